"""Strings that came from input, made safe for one log line."""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wcwidth import wcswidth

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


def pad(value: Any, width: int) -> str:
    """``clip(value, width)`` padded to ``width`` terminal columns: a Chinese character takes two (wcwidth), so
    tables line up; a value wider than ``width`` is cut at a character boundary to fit."""
    text = clip(value, width)
    while wcswidth(text) > width:
        text = text[:-1]
    columns = wcswidth(text)
    return text + " " * max(0, width - (columns if columns >= 0 else len(text)))


def masked_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for messages: secrets are never printed)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.hostname or ""
    netloc = f"{user}***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets (CSV injection)."""


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell that a spreadsheet would run, prefixed with ``'`` so it is shown as text (OWASP's rule for CSV
    injection); numbers and other text pass unchanged."""
    if isinstance(cell, str) and cell.startswith(SPREADSHEET_TRIGGERS):
        return "'" + cell
    return cell


class SafeCsvWriter:
    """``csv.writer`` whose text cells pass through ``spreadsheet_safe``: every CSV segmenter writes."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Any) -> None:
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])

    def writerows(self, rows: Any) -> None:
        for row in rows:
            self.writerow(row)
