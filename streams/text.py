"""Strings that came from input, made safe for one log line."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

LIMIT = 80


def clip(value: Any, limit: int = LIMIT) -> str:
    """``value`` with its control characters escaped (no newline reaches a log line) and cut after ``limit``
    characters, with its length when cut: ``AAAA… (100,000 chars)``. Bytes that are not UTF-8 show as ``\\xff``."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode(errors="backslashreplace")
    text = value if isinstance(value, str) else str(value)
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cut)
    return cut if len(text) <= limit else f"{cut}… ({len(text):,} chars)"


def masked_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for messages: secrets are never printed)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.hostname or ""
    netloc = f"{user}***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
