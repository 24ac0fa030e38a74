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


def read_rows(path: Path, kind: str, progress: Progress | None = None) -> Iterator[tuple[int, Row]]:
    """(line number, row) for each data row; checks the header first."""
    if not path.is_file():
        raise InputFileError(f"{kind} file {path} does not exist")
    consumed = 0

    def lines(handle: object) -> Iterator[str]:
        nonlocal consumed
        for raw in handle:  # type: ignore[attr-defined]
            consumed += len(raw)
            yield raw.decode("utf-8-sig")

    with path.open("rb") as handle:
        reader = csv.DictReader(lines(handle))
        missing = [c for c in REQUIRED[kind] if c not in (reader.fieldnames or [])]
        if missing:
            raise InputFileError(f"{path}: {kind} need the columns {', '.join(missing)} "
                                 f"(found: {', '.join(reader.fieldnames or []) or 'no header'})")
        for index, row in enumerate(reader):
            yield reader.line_num, row
            if progress and index % 4096 == 0:
                progress.update(consumed)
    if progress:
        progress.update(consumed)
