"""Load a ruleset from YAML text, refusing mistakes with the file, line, column and reason."""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Iterable
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from schemas.ruleset import ActionRule, RuleSetDocument
from segmenter.actions import ActionSpec, AlertSpec, CouponSpec, PublishSpec, RosterSpec, duration_s
from segmenter.errors import InvalidRuleError
from segmenter.metrics import PROFILE_FIELDS
from segmenter.occasions import MAX_LEAD_DAYS
from segmenter.rules.compiler import COPIED_METRICS, TEMPLATE_FIELD, CompiledDimension, CompiledTag, RuleSet
from segmenter.rules.conditions import CompiledSegment, compile_condition
from segmenter.rules.syntax import RuleSyntaxError, parse

Path_ = tuple[str | int, ...]


MAX_RULES_BYTES = 256 * 1024
"""A ruleset's text, at most (a large one is a few KiB)."""
MAX_NODES = 20_000
"""YAML nodes (mappings, lists, scalars) in one ruleset, at most."""
MAX_DEPTH = 32
"""Nesting of mappings and lists, at most (a ruleset needs 6)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the rule language's limits, checked while the text is composed.

    Aliases and anchors are refused (an alias re-expanded at every use is how 600 bytes become gigabytes),
    explicit tags are refused (a ruleset has no use for ``!!python/...`` or ``!!binary``), and depth and node
    count are bounded, so composing stays linear in the text and never exhausts the interpreter's stack.
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0
        self.nodes = 0

    def refuse(self, mark: Any, reason: str) -> InvalidRuleError:
        return InvalidRuleError(f"{self.source}:{mark.line + 1}:{mark.column + 1}: {reason}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise self.refuse(event.start_mark, "YAML anchors and aliases (& and *) are not allowed in a ruleset; "
                                                "write the value out")
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!":  # "!" is a quoted scalar's non-specific tag, not one written
            raise self.refuse(event.start_mark, f"YAML tags ({tag}) are not allowed in a ruleset")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(event.start_mark, f"more than {MAX_NODES:,} YAML nodes; a ruleset is far smaller")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.refuse(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str, source: str) -> yaml.Node | None:
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_RULES_BYTES:
        raise InvalidRuleError(f"{source}: {size:,} bytes; a ruleset is at most {MAX_RULES_BYTES:,} bytes")
    loader = None
    try:
        loader = _Loader(text, source)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise InvalidRuleError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        raise InvalidRuleError(f"{source}: character {exc.position + 1}: not valid YAML: "
                               f"{exc.reason} (U+{exc.character:04X})") from None
    except yaml.YAMLError as exc:
        raise InvalidRuleError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        if loader is not None:
            loader.dispose()


class _Tree:
    """YAML composed into plain data, remembering where every node started."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.marks: dict[Path_, tuple[int, int, str | None]] = {}
        self._constructor = yaml.SafeLoader("")
        node = _compose(text, source)
        if node is None:
            raise InvalidRuleError(f"{source}: the file is empty")
        self.data = self._walk(node, ())

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits
            mark = node.start_mark
            reason = str(exc).splitlines()[0][:200]
            raise InvalidRuleError(f"{self.source}:{mark.line + 1}:{mark.column + 1}: cannot read this value "
                                   f"({reason})") from None

    def _walk(self, node: yaml.Node, path: Path_) -> Any:
        style = getattr(node, "style", None)
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1, style)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    mark = key_node.start_mark
                    raise InvalidRuleError(f"{self.source}:{mark.line + 1}:{mark.column + 1}: a key is a plain "
                                           "name, not a mapping or a list")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    mark = key_node.start_mark
                    raise InvalidRuleError(f"{self.source}:{mark.line + 1}:{mark.column + 1}: cannot read this "
                                           "value (a YAML merge key '<<'; write the keys out)")
                key = key_node.value  # a key is a name as written: ``on`` stays "on", not YAML 1.1's True
                if key in out:
                    line = key_node.start_mark.line + 1
                    raise InvalidRuleError(f"{self.where(path)}: duplicate key {key!r} at line {line}")
                out[key] = self._walk(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def where(self, path: Path_, column: int | None = None) -> str:
        while path not in self.marks:
            path = path[:-1]
        line, col, style = self.marks[path]
        if column is not None and style in (None, "", "'", '"'):
            col += column - 1 + (1 if style in ("'", '"') else 0)
        return f"{self.source}:{line}:{col}"


def _pydantic_message(tree: _Tree, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{tree.where(loc)}: {dotted}: {error['msg']}")
    return "\n".join(lines)


def ruleset_from_document(doc: RuleSetDocument, source: str = "<rules>", money_scale: int = 2,
                          text: str = "", tree: _Tree | None = None) -> RuleSet:
    """Compile a validated document; each bad condition is reported with its position."""
    dimensions, problems = [], []
    for dim_name, dim in doc.dimensions.items():
        seen: set[str] = set()
        segments: list[CompiledSegment] = []
        for index, seg in enumerate(dim.segments):
            path: Path_ = ("dimensions", dim_name, "segments", index, "when")
            where_seg = f"dimension {dim_name!r}, segment {seg.name!r}"
            if seg.name in seen:
                problems.append(f"{_where(tree, path[:-1], source)}: {where_seg}: duplicate segment name")
            seen.add(seg.name)
            try:
                segments.append(compile_condition(seg.name, seg.when, parse(seg.when), money_scale))
            except RuleSyntaxError as exc:
                problems.append(f"{_where(tree, path, source, exc.column)}: {where_seg}, {exc}")
        labels = {seg.name: seg.label for seg in dim.segments if seg.label}
        strategies = {seg.name: seg.strategy for seg in dim.segments if seg.strategy}
        if dim.default_label:
            labels[dim.default] = dim.default_label
        if dim.default_strategy:
            strategies[dim.default] = dim.default_strategy
        dimensions.append(CompiledDimension(dim_name, tuple(segments), dim.default, dim.label, labels, strategies))
    def where(path: Path_, column: int | None = None) -> str:
        return _where(tree, path, source, column)

    tags = _tags(doc, problems, money_scale, where)
    rosters = {name: RosterSpec(name, r.by, r.policy, {t: tuple(m) for t, m in r.teams.items()}, tuple(r.default))
               for name, r in doc.rosters.items()}
    actions = _actions(doc, rosters, problems, lambda path: _where(tree, path, source))
    if problems:
        raise InvalidRuleError("\n".join(problems))
    return RuleSet(doc.id, doc.version, doc.description, tuple(dimensions), text, tuple(actions), rosters,
                   money_scale, tuple(tags))


def _tags(doc: RuleSetDocument, problems: list[str], money_scale: int,
          where: Callable[[Path_, int | None], str]) -> list[CompiledTag]:
    """Compile the tags section: each name's ``{profile.x}`` fields checked, each condition compiled."""
    out: list[CompiledTag] = []
    seen: set[str] = set()
    for index, rule in enumerate(doc.tags):
        path: Path_ = ("tags", index)
        label = f"tag {rule.name!r}"
        if rule.name in seen:
            problems.append(f"{where((*path, 'name'), None)}: {label}: duplicate tag name")
        seen.add(rule.name)
        fields = tuple(m.group(1) for m in TEMPLATE_FIELD.finditer(rule.name))
        bad = [f for f in fields if f not in PROFILE_FIELDS and f not in COPIED_METRICS]
        if bad or rule.name.count("{") != len(fields) or rule.name.count("}") != len(fields):
            problems.append(f"{where((*path, 'name'), None)}: {label}: a name may copy only "
                            f"{', '.join('{' + f + '}' for f in (*PROFILE_FIELDS, *COPIED_METRICS))}")
            continue
        condition = None
        if rule.when is not None:
            try:
                condition = compile_condition(rule.name, rule.when, parse(rule.when), money_scale)
            except RuleSyntaxError as exc:
                problems.append(f"{where((*path, 'when'), exc.column)}: {label}, {exc}")
                continue
        out.append(CompiledTag(rule.name, condition, fields))
    return out


def _suggest(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known) or 'none'}"


def _actions(doc: RuleSetDocument, rosters: dict[str, RosterSpec], problems: list[str],
             where: Callable[[Path_], str]) -> list[ActionSpec]:
    """Compile the actions section, checking every name it refers to."""
    segments = {name: {s.name for s in d.segments} | {d.default} for name, d in doc.dimensions.items()}
    out: list[ActionSpec] = []
    seen: set[str] = set()
    for index, rule in enumerate(doc.actions):
        path: Path_ = ("actions", index)
        trigger: Literal["enter", "leave"] = "enter" if rule.enter is not None else "leave"
        ref = rule.enter or rule.leave or ""
        dim, _, seg = ref.partition(".")
        label = f"action {rule.id!r}"
        if rule.id in seen:
            problems.append(f"{where((*path, 'id'))}: {label}: duplicate action id")
        seen.add(rule.id)
        lead_days = 0
        if rule.on is not None:
            lead_s = _duration(rule.lead, (*path, "lead"), label, problems, where)
            lead_days = lead_s // 86_400
            if lead_s % 86_400 or lead_days > MAX_LEAD_DAYS:
                problems.append(f"{where((*path, 'lead'))}: {label}: a lead is whole days, at most {MAX_LEAD_DAYS}d")
        elif dim not in segments:
            problems.append(f"{where((*path, trigger))}: {label}: no dimension {dim!r}{_suggest(dim, segments)}")
        elif seg not in segments[dim]:
            problems.append(f"{where((*path, trigger))}: {label}: dimension {dim!r} has no segment {seg!r}"
                            f"{_suggest(seg, segments[dim])}")
        cooldown, dwell = (_duration(rule.cooldown, (*path, "cooldown"), label, problems, where),
                           _duration(rule.min_dwell, (*path, "min_dwell"), label, problems, where))
        coupon, alert, publish = _what(rule, path, label, rosters, problems=problems, where=where)
        if rule.on is not None:
            out.append(ActionSpec.on_occasion(rule.id, rule.on, lead_days, cooldown, coupon=coupon, alert=alert,
                                              publish=publish))
        else:
            out.append(ActionSpec(rule.id, trigger, dim, seg, cooldown, dwell, coupon, alert, publish))
    return out


def _what(rule: ActionRule, path: Path_, label: str, rosters: dict[str, RosterSpec], *, problems: list[str],
          where: Callable[[Path_], str]) -> tuple[CouponSpec | None, AlertSpec | None, PublishSpec | None]:
    """An action's coupon, alert or published event, checking its roster and templates."""
    coupon = alert = None
    if rule.coupon is not None:
        c = rule.coupon
        valid_for = _duration(c.valid_for, (*path, "coupon", "valid_for"), label, problems, where)
        coupon = CouponSpec(c.template, c.value, c.percent, valid_for)
    if rule.alert is not None:
        a = rule.alert
        if a.roster is not None and a.roster not in rosters:
            problems.append(f"{where((*path, 'alert', 'roster'))}: {label}: no roster {a.roster!r}"
                            f"{_suggest(a.roster, rosters)}")
        bad = _template_problem(a.message)
        if bad:
            problems.append(f"{where((*path, 'alert', 'message'))}: {label}: {bad}; a message may use "
                            f"{', '.join('{' + f + '}' for f in ALERT_FIELDS)}")
        alert = AlertSpec(a.priority, a.roster, a.message)
    publish = None
    if rule.publish is not None:
        for name, template in rule.publish.payload.items():
            bad = _template_problem(template, PUBLISH_FIELDS)
            if bad:
                problems.append(f"{where((*path, 'publish', 'payload', name))}: {label}: {bad}; a payload "
                                f"value may use {', '.join('{' + f + '}' for f in PUBLISH_FIELDS)}")
        publish = PublishSpec(rule.publish.topic, tuple(rule.publish.payload.items()))
    return coupon, alert, publish


ALERT_FIELDS = ("customer_id", "dimension", "segment", "manager", "team")
"""The fields an alert message may name, each as a bare ``{name}``."""


PUBLISH_FIELDS = ("customer_id", "dimension", "segment", "label", "strategy")
"""The fields a published event's payload values may name."""


def _template_problem(message: str, allowed: tuple[str, ...] = ALERT_FIELDS) -> str | None:
    """Why an alert message is refused, or None. Only bare ``{name}`` fields of ``ALERT_FIELDS``: ``str.format``
    would otherwise reach attributes (``{customer_id.__class__}``) or pad to any width (``{customer_id:>9999999}``)."""
    try:
        parts = list(string.Formatter().parse(message))
    except ValueError as exc:
        return f"bad message template ({exc})"
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in allowed:
            return f"the field {{{field}}} is not allowed" if field else "an empty field {} is not allowed"
        if spec or conversion:
            return f"the field {{{field}}} may not carry a format or a conversion"
    return None


def _duration(text: str, path: Path_, label: str, problems: list[str], where: Callable[[Path_], str]) -> int:
    try:
        return duration_s(text)
    except InvalidRuleError as exc:
        problems.append(f"{where(path)}: {label}: {exc}")
        return 0


def _where(tree: _Tree | None, path: Path_, source: str, column: int | None = None) -> str:
    return tree.where(path, column) if tree else source


def load_ruleset(text: str, source: str = "<rules>", money_scale: int = 2) -> RuleSet:
    """Parse, validate and compile a ruleset YAML document."""
    tree = _Tree(text, source)
    if not isinstance(tree.data, dict):
        raise InvalidRuleError(f"{source}:1:1: a ruleset is a mapping with id, version and dimensions")
    try:
        doc = RuleSetDocument.model_validate(tree.data)
    except ValidationError as exc:
        raise InvalidRuleError(_pydantic_message(tree, exc)) from exc
    return ruleset_from_document(doc, source, money_scale, text, tree)
