"""A ruleset compiled (``RuleSet``): its dimensions, tags, occasions and actions, and every dimension's conditions
fused into one function made by ``eval`` of generated source (``_fuse``: one call per event instead of a call per
comparison), checked as each condition's is (``segmenter.rules.conditions``, which compiles the conditions and says
how the generated code is kept safe).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from segmenter.actions import ActionSpec, RosterSpec
from segmenter.extras import ExtraSums
from segmenter.metrics import (
    SOURCE_GLOBALS,
    TOTALS_ARGS,
    metric_info,
    source_of,
    top_category,
)
from segmenter.occasions import Kind, OccasionSpec
from segmenter.ranking import AMOUNT, PURCHASES, QUINTILES, RECENCY
from segmenter.rules.conditions import (
    CompiledSegment,
    Number,
    Values,
    _checked,
)


@dataclass(frozen=True, slots=True)
class CompiledDimension:
    name: str
    segments: tuple[CompiledSegment, ...]
    default: str
    label: str | None = field(default=None, compare=False)  # how people read the dimension's name
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)  # segment -> its label, where given
    strategies: Mapping[str, str] = field(default_factory=dict, compare=False)  # segment -> its strategy, where given

    def shown(self, segment: str) -> str:
        """A segment as people read it: its label, with its name where the two differ."""
        label = self.labels.get(segment)
        return segment if label is None or label == segment else f"{label} ({segment})"

    def classify(self, values: Values) -> str:
        for segment in self.segments:
            if segment.predicate(values):
                return segment.name
        return self.default


TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")
COPIED_METRICS = ("top_category_12m",)
"""The window metrics a tag name may copy besides the profile's fields (``偏好:{top_category_12m}``)."""
_TAG_UNSAFE = re.compile(r"[^\w.:/-]+")  # a copied attribute keeps what a manual tag name may hold, the rest is _
MAX_TAG = 128
_RANKED_BY = {"amount_12m_rank_pct": (AMOUNT,), "purchases_12m_rank_pct": (PURCHASES,), "rfm_r": (RECENCY,),
              "rfm_f": (PURCHASES,), "rfm_m": (AMOUNT,), "rfm_score": (AMOUNT, PURCHASES, RECENCY)}


@dataclass(frozen=True, slots=True)
class CompiledTag:
    """A tag the rules give: ``name`` with ``{profile.x}`` fields filled from the profile, while ``condition``
    (None: always) holds."""

    name: str
    condition: CompiledSegment | None
    fields: tuple[str, ...]  # the profile metrics (or ``COPIED_METRICS``) the name copies, in order

    def matches(self, name: str) -> bool:
        """``name`` is one this tag renders to for some values of its fields (for a tag that left with a value)."""
        if not self.fields:
            return name == self.name
        parts = TEMPLATE_FIELD.split(self.name)[::2]  # the text between the fields
        return re.fullmatch(r"[\w.:/-]+".join(re.escape(p) for p in parts), name) is not None

    def render(self, profile: Mapping[str, str | None]) -> str | None:
        """The tag's name for this profile; None while a field it copies is unknown."""
        if not self.fields:
            return self.name
        values = [profile.get(f) for f in self.fields]
        if any(not v for v in values):
            return None
        it = iter(values)
        return TEMPLATE_FIELD.sub(lambda _: _TAG_UNSAFE.sub("_", str(next(it)).strip()), self.name)[:MAX_TAG]

    def reason(self, profile: Mapping[str, str | None]) -> str:
        """Why a customer has (or lacks) it, as written."""
        copied = ", ".join(f"{f} = {profile[f]!r}" if f in profile else f"copies {f}" for f in self.fields)
        return " and ".join(p for p in (self.condition.when if self.condition else "", copied) if p) or "always"


@dataclass(frozen=True, slots=True)
class RuleSet:
    id: str
    version: int
    description: str
    dimensions: tuple[CompiledDimension, ...]
    source: str  # the YAML text it was loaded from
    actions: tuple[ActionSpec, ...] = field(default=(), compare=False)
    rosters: Mapping[str, RosterSpec] = field(default_factory=dict, compare=False)
    money_scale: int = field(default=2, compare=False)  # money constants are held in 10**-money_scale units
    tags: tuple[CompiledTag, ...] = ()
    parts: tuple[RuleSet, ...] = field(default=(), compare=False)
    """The rulesets in force it combines (``segmenter.rules.rulebook``); empty for one ruleset."""
    # derived once (the hot path asks for them on every event)
    metrics: frozenset[str] = field(init=False, compare=False, repr=False)
    _day_constants: dict[str, tuple[Number, ...]] = field(init=False, compare=False, repr=False)
    windows_read: tuple[bool, bool] = field(init=False, compare=False, repr=False)  # (long, short)
    key: str = field(init=False, compare=False, repr=False)  # "id@version" ("a@1+b@2" for several combined)
    dimension_keys: tuple[str, ...] = field(init=False, compare=False, repr=False)  # per dimension, its part's key
    _pairs: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = field(init=False, compare=False, repr=False)
    segment_names: Mapping[str, frozenset[str]] = field(init=False, compare=False, repr=False)
    """Per dimension, every segment a customer can be in (the default included)."""
    reads_days_since: bool = field(init=False, compare=False, repr=False)
    copies_metrics: bool = field(init=False, compare=False, repr=False)  # a tag name copies a window metric
    occasions: tuple[OccasionSpec, ...] = field(init=False, compare=False, repr=False)  # what actions fire on
    classify_all: Callable[[Values], tuple[str, ...]] = field(init=False, compare=False, repr=False)
    """One segment per dimension, first match wins: every dimension's chain fused into one function."""
    classify_totals: Callable[..., tuple[str, ...]] = field(init=False, compare=False, repr=False)
    """The same over window totals: ``(long, short, first_purchase, last_purchase, as_of_day, profile)``."""
    judge_totals: Callable[..., tuple[Any, ...]] = field(init=False, compare=False, repr=False)
    """``classify_totals``' segments followed by the truth of each tag condition (``tag_conditions``): what time
    alone may change (``classify_totals`` itself when the ruleset has no tag conditions)."""
    tag_conditions: tuple[CompiledTag, ...] = field(init=False, compare=False, repr=False)
    population_dims: tuple[int, ...] = field(init=False, compare=False, repr=False)
    """The dimensions (by index) that read population metrics: hysteresis applies to them."""
    boundaries: Mapping[int, tuple[float, ...]] = field(init=False, compare=False, repr=False)
    """Per ranked value (``segmenter.ranking``) the rules read, the ranks where a customer's class can change."""

    def __post_init__(self) -> None:
        conditions = tuple(t for t in self.tags if t.condition is not None)
        object.__setattr__(self, "tag_conditions", conditions)
        read = [s for d in self.dimensions for s in d.segments] + [t.condition for t in conditions
                                                                    if t.condition is not None]
        copied = {f for t in self.tags for f in t.fields if f in COPIED_METRICS}
        object.__setattr__(self, "copies_metrics", bool(copied))
        specs = {o for p in self.parts for o in p.occasions} if self.parts else {
            OccasionSpec(cast(Kind, a.occasion), a.lead_days, self.id) for a in self.actions if a.occasion is not None}
        object.__setattr__(self, "occasions", tuple(sorted(specs, key=lambda o: (o.kind, o.lead_days, o.ruleset_id))))
        object.__setattr__(self, "metrics", frozenset(m for s in read for m in s.metrics) | copied)
        constants: dict[str, set[Number]] = {}
        for seg in read:
            for atom in seg.atoms:
                vals = atom.value if isinstance(atom.value, tuple) else (atom.value,)
                constants.setdefault(atom.metric, set()).update(v for v in vals if not isinstance(v, str))
        object.__setattr__(self, "_day_constants", {m: tuple(sorted(v)) for m, v in constants.items()})
        windows = {metric_info(m).window for m in self.metrics}
        object.__setattr__(self, "windows_read", (bool(windows & {"long", "both"}), bool(windows & {"short", "both"})))
        object.__setattr__(self, "reads_days_since", any(metric_info(m).kind == "days" for m in self.metrics))
        object.__setattr__(self, "classify_all", _fuse(self.dimensions))
        object.__setattr__(self, "classify_totals", _fuse(self.dimensions, over_totals=True))
        object.__setattr__(self, "judge_totals", _fuse(self.dimensions, over_totals=True, tags=conditions)
                           if conditions else self.classify_totals)
        object.__setattr__(self, "key", "+".join(p.key for p in self.parts) if self.parts
                           else f"{self.id}@{self.version}")
        object.__setattr__(self, "dimension_keys", tuple(p.key for p in self.parts for _ in p.dimensions)
                           if self.parts else (self.key,) * len(self.dimensions))
        object.__setattr__(self, "_pairs", {})
        population = {m for m in self.metrics if metric_info(m).window == "population"}
        object.__setattr__(self, "population_dims", tuple(
            i for i, d in enumerate(self.dimensions) if population & {m for s in d.segments for m in s.metrics}))
        bounds: dict[int, set[float]] = {}
        for metric in population:
            ranked = _RANKED_BY[metric]
            for index in ranked:
                cuts = bounds.setdefault(index, set())
                if metric.endswith("_rank_pct"):
                    cuts.update(float(c) for c in constants.get(metric, ()))
                else:
                    cuts.update(QUINTILES)
        object.__setattr__(self, "boundaries", {i: tuple(sorted(c)) for i, c in bounds.items()})
        object.__setattr__(self, "segment_names", {
            d.name: frozenset(s.name for s in d.segments) | {d.default} for d in self.dimensions})

    def pairs(self, segments: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """``((dimension, segment), ...)`` for a result of ``classify_all`` or ``classify_totals``: one
        shared tuple per distinct result (a handful), so records that hold it cost no allocation and
        compare by identity first."""
        found = self._pairs.get(segments)
        if found is None:
            found = self._pairs[segments] = tuple(zip((d.name for d in self.dimensions), segments, strict=True))
        return found

    def tags_of(self, flags: Sequence[object], profile: Mapping[str, str | None]) -> list[str]:
        """The tags the rules give, from the tag flags of ``judge_totals`` (the part after the segments)."""
        out = []
        it = iter(flags)
        for tag in self.tags:
            if tag.condition is not None and not next(it):
                continue
            name = tag.render(profile)
            if name is not None:
                out.append(name)
        return out

    def copied(self, profile: Mapping[str, str | None], extra: ExtraSums | None) -> Mapping[str, str | None]:
        """What tag names copy: the profile, with ``COPIED_METRICS`` from the window's categories where a name
        copies them."""
        return {**profile, "top_category_12m": top_category(extra)} if self.copies_metrics else profile

    def tag_rule(self, name: str, profile: Mapping[str, str | None]) -> CompiledTag | None:
        """The rule behind the tag ``name`` for a customer with ``profile`` (see ``copied``), or the first whose
        template renders to it with other values (a copied value that moved on)."""
        return self.tag_rules(profile).get(name) or next((t for t in self.tags if t.matches(name)), None)

    def tag_rules(self, profile: Mapping[str, str | None]) -> dict[str, CompiledTag]:
        """The rule behind each tag name the rules may give a customer with ``profile`` (the first, when two
        templates render alike)."""
        out: dict[str, CompiledTag] = {}
        for tag in self.tags:
            name = tag.render(profile)
            if name is not None:
                out.setdefault(name, tag)
        return out

    def day_constants(self, metric: str) -> tuple[Number, ...]:
        """Constants that ``metric`` (a days_since_* metric) is compared with, for due times."""
        return self._day_constants.get(metric, ())


def _fuse(dimensions: tuple[CompiledDimension, ...], over_totals: bool = False,
          tags: tuple[CompiledTag, ...] = ()) -> Callable[..., tuple[Any, ...]]:
    """``lambda v: (s1 if p1 else s2 if p2 else default, ...)``: per event one call instead of one per
    dimension and segment (the segments' constants have names unique across compilations). Each of ``tags``
    (with a condition) adds its condition's truth after the segments.

    ``over_totals``: the same over the window totals (``metrics.TOTALS_ARGS``), each ``v['metric']``
    replaced by the metric's expression (``metrics.SOURCES``): no metric view, no lookups."""
    bound: dict[str, object] = {}
    chains = []

    def expression(segment: CompiledSegment) -> str:
        bound.update(segment.constants)
        source = segment.source
        if over_totals:
            for metric in segment.metrics:
                source = source.replace(f"v[{metric!r}]", source_of(metric))
        return source

    for dim in dimensions:
        chain = repr(dim.default)
        for segment in reversed(dim.segments):
            chain = f"({segment.name!r} if {expression(segment)} else {chain})"
        chains.append(chain)
    chains.extend(expression(tag.condition) for tag in tags if tag.condition is not None)
    args = TOTALS_ARGS if over_totals else "v"
    return cast(Callable[..., tuple[Any, ...]],
                eval(_checked(f"lambda {args}: ({''.join(c + ', ' for c in chains)})", bound),  # noqa: S307
                     {**SOURCE_GLOBALS, **bound}))
