"""Type-check a parsed condition against the metric registry and compile it to closures.

How: each condition's tree becomes one Python expression, and a ruleset's dimensions one fused function, made
by ``eval`` of generated source (one call per event instead of a call per comparison). The generated text
holds no text an operator wrote: metric names are checked against ``METRICS`` and written with ``repr``,
segment names with ``repr``, operators come from a fixed table, constants are converted first and passed as
bound values (``c17``), never as text. The rule text itself is refused with its column before anything is
generated when it holds anything else (``syntax``: unknown characters, calls, attribute access, dunder or
unknown names, numbers past 24 digits, nesting past 32, conditions past 4,000 characters). Last, ``_checked``
parses the generated source and refuses any construct outside the few the generator makes (no attribute but
``p.get``, ``g.rank``, ``g.score`` and ``g.cell``, no other call but ``_Fraction``, no name it did not bind), and
``eval`` runs with no builtins.

Constants are converted once, at compile time, into the metric's unit (money to minor units, so
``amount_12m >= 10000`` compares integers of cents). A metric with no value makes any comparison
false. Each comparison is also kept in a normalised form (``Atom``) for gap analysis and due times.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

from segmenter.actions import ActionSpec, RosterSpec
from segmenter.extras import ExtraSums
from segmenter.metrics import (
    ARITHMETIC,
    METRICS,
    SOURCE_GLOBALS,
    TOTALS_ARGS,
    Value,
    is_metric,
    metric_info,
    source_of,
    top_category,
)
from segmenter.occasions import Kind, OccasionSpec
from segmenter.ranking import AMOUNT, PURCHASES, QUINTILES, RECENCY
from segmenter.rules.syntax import Arith, BoolOp, Compare, Const, InList, Name, Node, Not, Operand, RuleSyntaxError

Values = dict[str, Value]
Predicate = Callable[[Values], bool]
Number = int | Fraction

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_NAMES = itertools.count()  # names of bound constants
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True, slots=True)
class Atom:
    """A normalised comparison: ``metric op constant`` or ``metric in/not in constants``."""

    metric: str
    op: str  # one of _OPS, or "in" / "not in"
    value: Number | str | tuple[Number | str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    name: str
    when: str
    predicate: Predicate
    node: Node
    atoms: tuple[Atom, ...]
    metrics: tuple[str, ...]
    cross_metric: bool  # compares two metrics or computes (gap analysis cannot reason about it)
    source: str = field(default="False", compare=False, repr=False)  # the predicate's expression over ``v``
    constants: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)  # names it binds


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


_SAFE_NODES = (ast.Expression, ast.Lambda, ast.arguments, ast.arg, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp,
               ast.Not, ast.USub, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In,
               ast.NotIn, ast.Is, ast.IsNot, ast.Name, ast.Load, ast.Store, ast.NamedExpr, ast.Constant,
               ast.Subscript, ast.IfExp, ast.Tuple, ast.Call, ast.Attribute, ast.BinOp, ast.Sub)
_LOCALS = {"v", "x", "y", *(a.split("=")[0].strip() for a in TOTALS_ARGS.split(","))}
_METHODS = {("p", "get"), ("g", "rank"), ("g", "score"), ("g", "cell")}  # the only attributes generated code reads
_CALLS = {"_Fraction", "_cat", "_top", *ARITHMETIC.values()}  # the only functions it calls


def _checked(source: str, bound: Mapping[str, object]) -> str:
    """``source`` when it holds only what the generator makes; a ValueError (a defect here, never the rule
    author's) otherwise."""
    allowed = _LOCALS | set(bound) | set(SOURCE_GLOBALS)
    for node in ast.walk(ast.parse(source, mode="eval")):
        bad = not isinstance(node, _SAFE_NODES) or (
            isinstance(node, ast.Name) and node.id not in allowed) or (
            isinstance(node, ast.Attribute) and (not isinstance(node.value, ast.Name) or (
                node.value.id, node.attr) not in _METHODS)) or (
            isinstance(node, ast.Call) and not (isinstance(node.func, ast.Attribute) or (
                isinstance(node.func, ast.Name) and node.func.id in _CALLS))) or (
            isinstance(node, ast.Constant) and not isinstance(node.value, str | int | type(None))) or (
            isinstance(node, ast.Name) and node.id.startswith("__"))
        if bad:
            raise ValueError(f"generated rule code refused at {ast.dump(node)[:80]}: {source[:200]}")
    return source


def _unknown(name: Name) -> RuleSyntaxError:
    close = difflib.get_close_matches(name.name, METRICS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(METRICS)}"
    return RuleSyntaxError(name.col, f"unknown metric {name.name!r}{hint}")


def _convert(metric: str, const: Const, scale: int) -> Number | str:
    kind = metric_info(metric).kind
    if kind == "text":
        if not isinstance(const.value, str):
            raise RuleSyntaxError(const.col, f"{metric} is text: compare it with a quoted string")
        return const.value
    if isinstance(const.value, str):
        raise RuleSyntaxError(const.col, f"{metric} is a number: compare it with a number, not {const.value!r}")
    value: Decimal = const.value * (Decimal(10) ** scale) if kind == "money" else const.value
    exact = Fraction(value)
    return int(exact) if exact.denominator == 1 else exact


class Compiler:
    """Compiles one condition; collects its atoms and referenced metrics."""

    def __init__(self, money_scale: int) -> None:
        self.scale = money_scale
        self.atoms: list[Atom] = []
        self.metrics: dict[str, None] = {}
        self.cross_metric = False
        self.source = "False"  # set by compile(): the predicate's expression over ``v``
        self.constants: dict[str, object] = {}  # and the constants it binds

    def name(self, node: Name) -> str:
        if not is_metric(node.name):
            raise _unknown(node)
        self.metrics[node.name] = None
        return node.name

    def compile(self, node: Node) -> Predicate:
        """One Python function per condition: the tree is turned into a single expression over the
        metric view ``v`` (names checked against METRICS, constants passed as bound values), so an
        evaluation is one call instead of a call per comparison."""
        self.constants = {}
        self.source = self._source(node, self.constants)
        source = _checked(f"lambda v: {self.source}", self.constants)
        return cast(Predicate, eval(source, {**SOURCE_GLOBALS, **self.constants}))  # noqa: S307

    def _source(self, node: Node, constants: dict[str, object]) -> str:
        if isinstance(node, BoolOp):
            joiner = f" {node.op} "
            return "(" + joiner.join(self._source(item, constants) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"(not {self._source(node.item, constants)})"
        if isinstance(node, InList):
            return self.in_list(node, constants)
        return self.compare(node, constants)

    @staticmethod
    def _bind(constants: dict[str, object], value: object) -> str:
        name = f"c{next(_NAMES)}"  # unique across compilations: a ruleset fuses its segments' expressions
        constants[name] = value
        return name

    def in_list(self, node: InList, constants: dict[str, object]) -> str:
        if not isinstance(node.operand, Name):  # arithmetic included: a list holds what a metric reads as
            raise RuleSyntaxError(node.col, "the left side of 'in' must be a metric")
        metric = self.name(node.operand)
        options = tuple(_convert(metric, c, self.scale) for c in node.values)
        self.atoms.append(Atom(metric, "not in" if node.negated else "in", options, node.text))
        members = self._bind(constants, frozenset(options))
        op = "not in" if node.negated else "in"
        return f"((x := v[{metric!r}]) is not None and x {op} {members})"

    def compare(self, node: Compare, constants: dict[str, object]) -> str:
        left, op, right = node.left, node.op, node.right
        if isinstance(left, Arith) or isinstance(right, Arith):
            return self.computed(node, constants)
        if isinstance(left, Const) and isinstance(right, Const):
            raise RuleSyntaxError(node.col, f"{node.text!r} compares two constants")
        if isinstance(left, Const):
            left, right, op = right, left, _FLIP[op]
        assert isinstance(left, Name)
        assert op in _OPS, op  # the parser only makes these; they are Python's own operators
        metric = self.name(left)
        text_metric = metric_info(metric).kind == "text"
        if text_metric and op not in ("==", "!="):
            raise RuleSyntaxError(node.col, f"{metric} is text: only ==, != and 'in' apply to it")
        if isinstance(right, Name):
            other = self.name(right)
            if (metric_info(other).kind == "text") != text_metric:
                raise RuleSyntaxError(node.col, f"cannot compare {metric} with {other}: text against a number")
            self.cross_metric = True
            return f"((x := v[{metric!r}]) is not None and (y := v[{other!r}]) is not None and x {op} y)"
        const = _convert(metric, right, self.scale)
        self.atoms.append(Atom(metric, op, const, node.text))
        return f"((x := v[{metric!r}]) is not None and x {op} {self._bind(constants, const)})"

    def computed(self, node: Compare, constants: dict[str, object]) -> str:
        """A comparison with arithmetic on either side: exact (integers and fractions; money in minor units), and
        false where a metric has no value or a divisor is zero. Money stays money: it adds to money, multiplies
        and divides by numbers, and divided by money gives a number; a constant added to or compared with money
        is an amount."""
        left, right = _fold(node.left), _fold(node.right)
        if isinstance(left, Fraction) and isinstance(right, Fraction):
            raise RuleSyntaxError(node.col, f"{node.text!r} compares two constants")
        if isinstance(left, Fraction):
            left, right, op = right, left, _FLIP[node.op]
        else:
            op = node.op
        self.cross_metric = True  # gap analysis reasons about metric-versus-constant comparisons only
        left_source, unit = self.operand(left, constants)
        if isinstance(right, Fraction):
            right_source = self._bind(constants, _exact(right * 10**self.scale if unit == "money" else right))
        else:
            right_source, other = self.operand(right, constants)
            if other != unit:
                raise RuleSyntaxError(node.col, f"{node.text!r} compares {unit} with {other}")
        return f"((x := {left_source}) is not None and (y := {right_source}) is not None and x {op} y)"

    def operand(self, node: Operand | Fraction, constants: dict[str, object],
                as_money: bool = False) -> tuple[str, str]:
        """``node``'s expression over ``v`` and its unit, "money" or "number" (a constant: a number, an amount
        with ``as_money``)."""
        if isinstance(node, Fraction):
            value = node * 10**self.scale if as_money else node
            return self._bind(constants, _exact(value)), "money" if as_money else "number"
        if isinstance(node, Const):
            raise RuleSyntaxError(node.col, f"text {node.value!r} in arithmetic")
        if isinstance(node, Name):
            metric = self.name(node)
            info = metric_info(metric)
            if info.kind in ("text", "days") or info.window == "population":
                what = {"text": "text", "days": "a day count (compare it with a constant, to keep due days exact)"
                        }.get(info.kind, "a population rank (compare it with a constant)")
                raise RuleSyntaxError(node.col, f"{metric} is {what}: it takes no part in arithmetic")
            return f"v[{metric!r}]", "money" if info.kind == "money" else "number"
        left, right = _fold(node.left), _fold(node.right)
        if node.op == "/" and isinstance(right, Fraction) and right == 0:
            raise RuleSyntaxError(node.col, "divided by zero")
        additive = node.op in "+-"
        if isinstance(left, Fraction):  # the constant takes the unit of the other side when added
            right_source, right_unit = self.operand(right, constants)
            left_source, left_unit = self.operand(left, constants, additive and right_unit == "money")
        else:
            left_source, left_unit = self.operand(left, constants)
            right_source, right_unit = self.operand(right, constants, additive and left_unit == "money")
        units = (left_unit, right_unit)
        result = {("+", "money", "money"): "money", ("-", "money", "money"): "money",
                  ("*", "money", "number"): "money", ("*", "number", "money"): "money",
                  ("/", "money", "money"): "number", ("/", "money", "number"): "money",
                  }.get((node.op, *units), "number" if units == ("number", "number") else None)
        if result is None:
            raise RuleSyntaxError(node.col, f"{left_unit} {node.op} {right_unit} has no meaning (money adds to "
                                            "money, multiplies and divides by numbers)")
        return f"{ARITHMETIC[node.op]}({left_source}, {right_source})", result


def _fold(node: Operand) -> Operand | Fraction:
    """Arithmetic on constants alone computed now, exactly (a number; None for a metric inside)."""
    if isinstance(node, Const):
        if isinstance(node.value, str):
            return node
        return Fraction(node.value)
    if isinstance(node, Arith):
        left, right = _fold(node.left), _fold(node.right)
        if isinstance(left, Fraction) and isinstance(right, Fraction):
            if node.op == "/" and right == 0:
                raise RuleSyntaxError(node.col, "a constant divided by zero")
            combine: Callable[[Fraction, Fraction], Fraction] = {
                "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[node.op]
            return combine(left, right)
    return node


def _exact(value: Fraction) -> Number:
    return int(value) if value.denominator == 1 else value


def compile_condition(name: str, text: str, node: Node, money_scale: int) -> CompiledSegment:
    compiler = Compiler(money_scale)
    predicate = compiler.compile(node)
    return CompiledSegment(
        name, text, predicate, node, tuple(compiler.atoms), tuple(compiler.metrics), compiler.cross_metric,
        compiler.source, dict(compiler.constants),
    )
