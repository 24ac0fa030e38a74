"""CSV exports as input (``classify`` and ``import``): the header checked first, bad rows counted and shown."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from segmenter.errors import SegmenterError
from segmenter.rows import Row
from streams.progress import Progress

REQUIRED = {
    "transactions": ("customer_id", "occurred_at", "amount"),
    "interactions": ("customer_id", "occurred_at", "kind"),
    "profiles": ("customer_id",),
}


class InputFileError(SegmenterError):
    """A whole input file is unusable (missing, or without the required columns)."""


@dataclass
class BadRows:
    count: int = 0
    shown: int = 0
    limit: int = 20
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    def report(self, path: Path, line: int, error: Exception) -> None:
        self.count += 1
        if self.shown < self.limit:
            self.shown += 1
            self.stream.write(f"{path}:{line}: skipped: {error}\n")
        elif self.shown == self.limit:
            self.shown += 1
            self.stream.write("… further bad rows are counted but not shown\n")


def read_rows(path: Path, kind: str, bad: BadRows, progress: Progress | None = None) -> Iterator[tuple[int, Row]]:
    """(line number, row) for each data row; checks the header first. A line that cannot be read as CSV (a field
    over ``csv.field_size_limit()``, bytes that are not UTF-8, a NUL) is reported to ``bad`` and skipped."""
    if not path.is_file():
        raise InputFileError(f"{kind} file {path} does not exist")
    consumed = 0

    def lines(handle: object) -> Iterator[str]:
        nonlocal consumed
        for raw in handle:  # type: ignore[attr-defined]
            consumed += len(raw)
            yield raw.decode("utf-8-sig", errors="replace")

    with path.open("rb") as handle:
        reader = csv.DictReader(lines(handle))
        try:
            fieldnames = reader.fieldnames or []
        except csv.Error as exc:
            raise InputFileError(f"{path}:1: the header cannot be read as CSV: {exc}") from None
        missing = [c for c in REQUIRED[kind] if c not in fieldnames]
        if missing:
            raise InputFileError(f"{path}: {kind} need the columns {', '.join(missing)} "
                                 f"(found: {', '.join(fieldnames) or 'no header'})")
        index = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad.report(path, reader.reader.line_num, ValueError(f"not readable as CSV: {exc}"))
                continue
            if "\ufffd" in "".join(v for v in row.values() if isinstance(v, str)):
                bad.report(path, reader.line_num, ValueError("bytes that are not UTF-8"))
                continue
            yield reader.line_num, row
            index += 1
            if progress and index % 4096 == 0:
                progress.update(consumed)
    if progress:
        progress.update(consumed)
