"""What every command shares: the settings and rules loaders, and the error that ends a command in one sentence."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from segmenter.rules import RuleSet, load_ruleset
from streams.settings import Settings


class CliError(Exception):
    """A failure to report as one sentence and exit 1."""


def load_settings() -> Settings:
    """The settings from the environment; a bad one is named in one sentence."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"setting SEGMENTER_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        raise CliError(f"bad {where}: {first['msg']}") from None


def load_rules(path: Path, money_scale: int) -> RuleSet:
    if not path.is_file():
        raise CliError(f"rules file {path} does not exist")
    return load_ruleset(path.read_text(encoding="utf-8"), str(path), money_scale)


def who(given: str | None) -> str:
    """Who does it, for history and overrides: ``--by``/``--author``, else $USER."""
    return given or os.environ.get("USER") or "unknown"
