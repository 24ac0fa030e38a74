"""After a worker's stop: the changes that bring the segment-change topic back to a customer's saved record.

A worker publishes a customer's changes as it processes the records and saves the record at its next flush; one that
stops in between has published changes its saved record does not hold, and the replay need not take the same path
again (``streams.worker.recovery`` says when these changes are made)."""

from __future__ import annotations

from collections.abc import Mapping

from segmenter.classify import Explanation, explain_dimension
from segmenter.metrics import NO_PROFILE, metric_view
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.rules.compiler import RuleSet
from segmenter.step import AnyChange, Change, CustomerRecord, TagChange

RECOVERED = "as the saved state holds it after a restart (a change published before was never saved)"


def changes_back(record: CustomerRecord, published: Mapping[str, str], published_tags: Mapping[str, bool], *, key: str,
                 now_day: int, ruleset: RuleSet, policy: Policy, population: Ranks | None = None) -> list[AnyChange]:
    """``published`` (dimension -> segment) and ``published_tags`` (tag -> added): what the segment-change topic
    last said of this customer past the worker's saved state, written by a worker that stopped before it saved the
    state they came from. A replay need not take the same path again (records of different topics interleave as
    they are fetched), so the changes that bring the topic back to ``record``; cause ``recovery``. A dimension the
    record does not hold is left to the replay, which classifies it."""
    segments = dict(record.segments)
    pins = {pin.dimension: pin for pin in record.overrides}
    dims = {dim.name: dim for dim in ruleset.dimensions}
    values = None
    changes: list[AnyChange] = []
    for name, said in sorted(published.items()):
        now = segments.get(name)
        if now is None or now == said:
            continue
        pin, dim = pins.get(name), dims.get(name)
        why = None
        if pin is not None and pin.segment == now:
            why = Explanation(name, now, pin.condition(), {}, ())
        elif dim is not None:
            values = values or metric_view(record.state, now_day, policy, record.profile or NO_PROFILE, population)
            why = explain_dimension(dim, values, policy)
        if why is None or why.segment != now:  # the record's segment is not today's (its due day has not come yet)
            why = Explanation(name, now, RECOVERED, {}, ())
        changes.append(Change(name, said, now, "recovery", key, explanation=why))
    held = set(record.tags)
    for tag, added in sorted(published_tags.items()):
        if added != (tag in held):
            changes.append(TagChange(tag, not added, "recovery", key, RECOVERED, metrics={}))
    return changes
