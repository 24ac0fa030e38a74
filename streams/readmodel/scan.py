"""One pass over every customer of the read model, for what the per-segment sums in Redis do not hold: each
segment's KPIs (average order value, repurchase rate; ``report --kpis``) and the data's completeness
(``segmenter quality``). Records are read a chunk at a time (``ReadModel.records``) and only their window sums are
decoded (``codec.sums``), as ``rules preview`` does: a million customers take a few hundred round trips and never
sit in memory at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from segmenter import codec, step
from segmenter.metrics import PROFILE_FIELDS
from segmenter.policy import Policy
from streams.readmodel.pareto import SegmentKpi
from streams.readmodel.reader import ReadModel
from streams.stored import HEADER


@dataclass
class Quality:
    """How complete the customers' data is: profiles, and each profile field, missing; no purchase or interaction in
    the long window."""

    customers: int = 0
    without_profile: int = 0
    missing: Counter[str] = field(default_factory=Counter)  # profile field -> customers without it
    no_purchase_12m: int = 0
    no_interaction_12m: int = 0
    unclocked: int = 0  # customers of a partition that has published no stream time yet (not counted above)


@dataclass
class Since:
    """Where each customer stood at the start of a span (``since``), from its story list (the newest ``keep``
    changes): (dimension, segment then, segment now) -> customers; and those whose list is full within the span,
    so that where they started is not known."""

    since: datetime
    keep: int
    moves: Counter[tuple[str, str, str | None]] = field(default_factory=Counter)
    churned: Counter[tuple[str, str]] = field(default_factory=Counter)  # (dimension, segment then): none in 6m now
    unknown: int = 0


@dataclass
class Scan:
    kpis: dict[tuple[str, str], SegmentKpi] = field(default_factory=dict)  # (dimension, segment) ->
    quality: Quality = field(default_factory=Quality)
    since: Since | None = None


def started(story: Sequence[bytes], segments: Mapping[str, str], since: datetime,
            keep: int) -> dict[str, str | None] | None:
    """Each dimension's segment at ``since``, from the customer's story list (newest first) and its segments now;
    a dimension it had no segment of then is None. None where the list is full and all of it within the span
    (earlier changes in the span were dropped from it)."""
    if keep == 0:
        return None
    then: dict[str, str | None] = dict(segments)
    oldest = None
    for entry in story:
        doc = orjson.loads(entry.decode().partition(" ")[2])
        at = datetime.fromisoformat(doc["at"]) if doc.get("at") else None
        if at is None or at < since:
            oldest = at
            break
        oldest = at
        if "dimension" in doc:
            then[doc["dimension"]] = doc["from"]  # walking back: the oldest change in the span has the last word
    if len(story) >= keep and oldest is not None and oldest >= since:
        return None
    return then


def scan(model: ReadModel, policy: Policy, progress: Callable[[int], None] | None = None,
         since: Since | None = None) -> Scan:
    """Every stored customer once, as of its partition's stream time; with ``since``, where each stood then."""
    out = Scan(since=since)
    quality, kpis = out.quality, out.kpis
    clock = model.clock()
    for chunk in model.records():
        stories = model.stories([customer for customer, _, _ in chunk]) if since is not None else None
        for k, (_, number, raw) in enumerate(chunk):
            quality.customers += 1
            now = clock.get(number)
            if now is None:
                quality.unclocked += 1
                continue
            state, record = step.loads_shallow(raw[HEADER.size:])
            long_start, short_start, _ = policy.starts(now[1])
            lo, sh, _, _, _ = codec.sums(state, now[1], long_start, short_start)
            purchases, amount, interactions = lo[0], lo[1], lo[3]
            profile = record.profile or {}
            if not any(profile.get(name) for name in PROFILE_FIELDS):
                quality.without_profile += 1
            quality.missing.update(name.removeprefix("profile.") for name in PROFILE_FIELDS if not profile.get(name))
            quality.no_purchase_12m += purchases == 0
            quality.no_interaction_12m += interactions == 0
            for dimension, segment in record.segments:
                kpi = kpis.get((dimension, segment))
                if kpi is None:
                    kpi = kpis[dimension, segment] = SegmentKpi()
                kpi.customers += 1
                kpi.purchases += purchases
                kpi.amount_minor += amount
                kpi.repeat += purchases >= 2
            if since is not None and stories is not None:
                then = started(stories[k], dict(record.segments), since.since, since.keep)
                if then is None:
                    since.unknown += 1
                    continue
                now_in = dict(record.segments)
                for dimension, was in then.items():
                    if was is not None:
                        since.moves[dimension, was, now_in.get(dimension)] += 1
                        since.churned[dimension, was] += sh[0] == 0
        if progress is not None:
            progress(quality.customers)
    return out


def cohorts(found: Scan) -> list[dict[str, Any]]:
    """Per dimension and segment at the span's start: its members then, how many are in it now, moved up or down
    (into a segment whose members' average amount_12m is now greater or smaller), left the dimension (its ruleset
    retired), and churned (no purchase in the short window now, wherever they are)."""
    if found.since is None:
        return []
    average = {key: kpi.amount_minor / kpi.customers for key, kpi in found.kpis.items() if kpi.customers}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (dimension, was, now), n in sorted(found.since.moves.items(), key=lambda item: (item[0][0], item[0][1])):
        row = rows.setdefault((dimension, was), {"dimension": dimension, "segment": was, "members": 0, "stayed": 0,
                                                 "moved_up": 0, "moved_down": 0, "left": 0,
                                                 "churned": found.since.churned[dimension, was]})
        row["members"] += n
        if now == was:
            row["stayed"] += n
        elif now is None:
            row["left"] += n
        elif average.get((dimension, now), 0) >= average.get((dimension, was), 0):
            row["moved_up"] += n
        else:
            row["moved_down"] += n
    return list(rows.values())
