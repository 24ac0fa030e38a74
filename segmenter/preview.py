"""What a candidate ruleset would do before it is applied: per dimension, how many customers (and how much
``amount_12m``) would move from each segment to each other, with a few sample customers per moving cell.

The streaming side feeds ``Transitions`` from the read model, the offline side from CSV exports, and both
print the same matrix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from segmenter.classify import classify
from segmenter.rules.compiler import RuleSet
from segmenter.state import Policy, WindowState

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

    def moving(self) -> int:
        """Customer-dimensions that would change segment."""
        return sum(c.customers for (_, was, now), c in self.cells.items() if was != now)


def candidate_segments(candidate: RuleSet, state: WindowState, as_of: int, policy: Policy,
                       profile: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    return candidate.pairs(classify(candidate, state, as_of, policy, profile))

