"""What a candidate ruleset would do before it is applied: per dimension, how many customers (and how much
``amount_12m``) would move from each segment to each other, with a few sample customers per moving cell.

The streaming side feeds ``Transitions`` from the read model, the offline side from CSV exports, and both
print the same matrix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from segmenter import codec
from segmenter.classify import classify
from segmenter.metrics import NO_PROFILE
from segmenter.policy import Policy
from segmenter.rules.compiler import RuleSet
from segmenter.state import WindowState
from segmenter.step import CustomerRecord, Override

NONE = "(none)"  # a dimension the customer was not classified by (new in the candidate)


@dataclass
class Cell:
    customers: int = 0
    amount_minor: int = 0
    samples: list[str] = field(default_factory=list)


@dataclass
class Transitions:
    samples: int = 3
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # (dimension, from, to)

    def add(self, customer: str, before: Mapping[str, str], after: Iterable[tuple[str, str]],
            amount_minor: int) -> None:
        """One customer: its segments in force (``before``, by dimension) and under the candidate."""
        for dimension, segment in after:
            was = before.get(dimension, NONE)
            cell = self.cells.get((dimension, was, segment))
            if cell is None:
                cell = self.cells[dimension, was, segment] = Cell()
            cell.customers += 1
            cell.amount_minor += amount_minor
            if was != segment and len(cell.samples) < self.samples:
                cell.samples.append(customer)

    def merge(self, other: Transitions) -> None:
        """Add ``other``'s customers (another part of the population) to these."""
        for key, cell in other.cells.items():
            mine = self.cells.get(key)
            if mine is None:
                mine = self.cells[key] = Cell()
            mine.customers += cell.customers
            mine.amount_minor += cell.amount_minor
            mine.samples.extend(cell.samples[: self.samples - len(mine.samples)])

    def moving(self) -> int:
        """Customer-dimensions that would change segment."""
        return sum(c.customers for (_, was, now), c in self.cells.items() if was != now)


def candidate_segments(candidate: RuleSet, state: WindowState, as_of: int, policy: Policy,
                       profile: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    return candidate.pairs(classify(candidate, state, as_of, policy, profile))


def held(candidate: RuleSet, segments: tuple[tuple[str, str], ...], overrides: tuple[Override, ...], as_of: int
         ) -> tuple[tuple[str, str], ...]:
    """``segments`` (the candidate's) with the customer's manual overrides applied, as the worker applies them:
    an active pin whose segment the candidate has wins for its dimension."""
    names = candidate.segment_names
    pinned = {p.dimension: p.segment for p in overrides if p.active(as_of) and p.segment in names.get(p.dimension, ())}
    if not pinned:
        return segments
    return tuple((dim, pinned.get(dim, segment)) for dim, segment in segments)


def preview_record(candidate: RuleSet, raw_state: bytes, record: CustomerRecord, as_of: int, policy: Policy
                   ) -> tuple[tuple[tuple[str, str], ...], int]:
    """A stored customer (``step.loads_shallow``'s parts) under ``candidate`` as of ``as_of``: its segments, overrides
    applied, and its amount_12m in minor units; read from the encoded state's sums (no buckets decoded)."""
    long_start, short_start, _ = policy.starts(as_of)
    lo, sh, first, last, extra = codec.sums(raw_state, as_of, long_start, short_start)
    segments = candidate.pairs(candidate.classify_totals(lo, sh, first, last, as_of, record.profile or NO_PROFILE,
                                                         None, extra))
    return (held(candidate, segments, record.overrides, as_of) if record.overrides else segments), lo[1]

