"""Load a ruleset from YAML text, refusing mistakes with the file, line, column and reason."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from schemas.ruleset import RuleSetDocument
from segmenter.errors import InvalidRuleError
from segmenter.rules.compiler import CompiledDimension, CompiledSegment, RuleSet, compile_condition
from segmenter.rules.syntax import RuleSyntaxError, parse

Path_ = tuple[str | int, ...]


class _Tree:
    """YAML composed into plain data, remembering where every node started."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.marks: dict[Path_, tuple[int, int, str | None]] = {}
        self._constructor = yaml.SafeLoader("")
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            raise InvalidRuleError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
        if node is None:
            raise InvalidRuleError(f"{source}: the file is empty")
        self.data = self._walk(node, ())

    def _walk(self, node: yaml.Node, path: Path_) -> Any:
        style = getattr(node, "style", None)
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1, style)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node)
                if key in out:
                    line = key_node.start_mark.line + 1
                    raise InvalidRuleError(f"{self.where(path)}: duplicate key {key!r} at line {line}")
                out[key] = self._walk(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._walk(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._constructor.construct_object(node)

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
        dimensions.append(CompiledDimension(dim_name, tuple(segments), dim.default))
    if problems:
        raise InvalidRuleError("\n".join(problems))
    return RuleSet(doc.id, doc.version, doc.description, tuple(dimensions), text)


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
