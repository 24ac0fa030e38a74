"""Classify a whole population from a batch of events (the engine of ``segmenter classify``).

Events are applied with stream time equal to their own day, which is exactly what a time-ordered
replay through the streaming worker does; the result then only depends on the set of events, not
on the order of the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from segmenter.classify import classify_values
from segmenter.metrics import WINDOW_METRICS, compute, display
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.rules.compiler import RuleSet
from segmenter.state import EMPTY, Fact, Outcome, WindowState, advance, apply, totals_at


@dataclass(frozen=True, slots=True)
class Classified:
    customer_id: str
    segments: tuple[str, ...]
    metrics: Mapping[str, object]
    tags: tuple[str, ...] = ()  # the tags the rules give, sorted


class Population:
    """Window states of many customers, fed fact by fact."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.states: dict[str, WindowState] = {}
        self.profiles: dict[str, dict[str, str | None]] = {}
        self.outcomes: Counter[Outcome] = Counter()
        self.after_as_of = 0

    def add(self, customer_id: str, fact: Fact, as_of_day: int) -> None:
        if fact.day > as_of_day:
            self.after_as_of += 1
            return
        state = self.states.get(customer_id, EMPTY)
        state, outcome = apply(state, fact, fact.day, self.policy)
        self.states[customer_id] = state
        self.outcomes[outcome] += 1

    def set_profile(self, customer_id: str, attributes: dict[str, str | None]) -> None:
        self.profiles[customer_id] = attributes

    def ranks(self, as_of_day: int) -> Ranks:
        """The exact ranks of the whole population as of ``as_of_day`` (``segmenter.ranking``)."""
        amounts, counts, lasts = [], [], []
        for state in self.states.values():
            t = totals_at(state, as_of_day, self.policy)
            if t.long[0] and state.last_purchase is not None:
                amounts.append(t.long[1])
                counts.append(t.long[0])
                lasts.append(state.last_purchase)
        return Ranks.exact(amounts, counts, lasts)

    def classify(self, ruleset: RuleSet, as_of_day: int) -> Iterator[Classified]:
        """Every customer seen (events or profile), sorted by id; population metrics exactly, from every customer."""
        population = self.ranks(as_of_day) if ruleset.boundaries else None
        for customer_id in sorted(self.states.keys() | self.profiles.keys()):
            state = advance(self.states.get(customer_id, EMPTY), as_of_day, self.policy)
            profile = self.profiles.get(customer_id, {})
            values = compute(state, as_of_day, self.policy, profile, population)
            shown = {m: display(m, values[m], self.policy) for m in WINDOW_METRICS}
            copied = ruleset.copied(profile, totals_at(state, as_of_day, self.policy).extra)
            tags = ruleset.tags_of([t.condition.predicate(values) for t in ruleset.tag_conditions
                                    if t.condition is not None], copied) if ruleset.tags else []
            yield Classified(customer_id, classify_values(ruleset, values), shown, tuple(sorted(set(tags))))
