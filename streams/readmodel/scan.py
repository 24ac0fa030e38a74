"""One pass over every customer of the read model, for what the per-segment sums in Redis do not hold: each
segment's KPIs (average order value, repurchase rate; ``report --kpis``) and the data's completeness
(``segmenter quality``). Records are read a chunk at a time (``ReadModel.records``) and only their window sums are
decoded (``codec.sums``), as ``rules preview`` does: a million customers take a few hundred round trips and never
sit in memory at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from segmenter import codec, step
from segmenter.metrics import PROFILE_FIELDS
from segmenter.state import Policy
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
class Scan:
    kpis: dict[tuple[str, str], SegmentKpi] = field(default_factory=dict)  # (dimension, segment) ->
    quality: Quality = field(default_factory=Quality)


def scan(model: ReadModel, policy: Policy, progress: Callable[[int], None] | None = None) -> Scan:
    """Every stored customer once, as of its partition's stream time."""
    out = Scan()
    quality, kpis = out.quality, out.kpis
    clock = model.clock()
    for chunk in model.records():
        for _, number, raw in chunk:
            quality.customers += 1
            now = clock.get(number)
            if now is None:
                quality.unclocked += 1
                continue
            state, record = step.loads_shallow(raw[HEADER.size:])
            long_start, short_start, _ = policy.starts(now[1])
            lo, _, _, _, _ = codec.sums(state, now[1], long_start, short_start)
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
        if progress is not None:
            progress(quality.customers)
    return out
