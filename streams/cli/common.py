"""What every command shares: the settings and rules loaders, and the error that ends a command in one sentence."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pydantic import SecretStr, ValidationError

from segmenter.rules import RuleSet, load_ruleset
from streams.settings import Settings
from streams.stack.embedded import StackInfo


class CliError(Exception):
    """A failure to report as one sentence and exit 1."""


def load_settings() -> Settings:
    """The settings from the environment; a bad one is named in one sentence. Without SEGMENTER_REDIS_PASSWORD,
    the password ``segmenter up`` made for the embedded Redis it runs on this Redis URL."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"setting SEGMENTER_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        raise CliError(f"bad {where}: {first['msg']}") from None
    return _embedded_password(settings)


def _embedded_password(settings: Settings) -> Settings:
    data_dir = Path(settings.data_dir)
    info = StackInfo.load(data_dir / "stack.json")
    path = data_dir / "redis.password"
    if settings.redis_password is not None or info is None or not path.is_file():
        return settings
    if (urlparse(settings.redis_url).port or 6379) != info.redis_port:
        return settings
    return settings.model_copy(update={"redis_password": SecretStr(path.read_text(encoding="utf-8").strip())})


def load_rules(path: Path, money_scale: int) -> RuleSet:
    if not path.is_file():
        raise CliError(f"rules file {path} does not exist")
    return load_ruleset(path.read_text(encoding="utf-8"), str(path), money_scale)


def who(given: str | None) -> str:
    """Who does it, for history and overrides: ``--by``/``--author``, else $USER."""
    return given or os.environ.get("USER") or "unknown"
