"""Type-check a parsed condition against the metric registry and compile it to closures (``Compiler``,
``compile_condition``); ``_checked`` refuses generated code outside what the generator makes.
``segmenter.rules.compiler`` fuses a ruleset's conditions into one function with the same check.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

from segmenter.metrics import ARITHMETIC, METRICS, SOURCE_GLOBALS, TOTALS_ARGS, Value, is_metric, metric_info
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
