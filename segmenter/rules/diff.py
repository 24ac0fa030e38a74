"""What changed between two versions of a ruleset, in the operator's words: segments added, removed or given
another condition, their order, defaults, tags, and actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from segmenter.rules.compiler import CompiledDimension, RuleSet


def _keyed(before: Mapping[str, str], after: Mapping[str, str], prefix: Callable[[str], str]) -> list[str]:
    """``+`` for keys only in ``after``, ``~`` for texts that differ, ``-`` for keys only in ``before``."""
    lines = []
    for key, text in after.items():
        if key not in before:
            lines.append(f"+ {prefix(key)}{text}")
        elif before[key] != text:
            lines.append(f"~ {prefix(key)}{before[key]}  ->  {text}")
    return lines + [f"- {prefix(key)}{text}" for key, text in before.items() if key not in after]


def _dimension(name: str, old: CompiledDimension, new: CompiledDimension) -> list[str]:
    before = {s.name: s.when for s in old.segments}
    after = {s.name: s.when for s in new.segments}
    lines = _keyed(before, after, lambda segment: f"{name}.{segment}: ")
    kept_before = [s for s in before if s in after]
    kept_after = [s for s in after if s in before]
    if kept_before != kept_after:
        lines.append(f"~ {name}: order {' > '.join(kept_before)}  ->  {' > '.join(kept_after)}")
    if old.default != new.default:
        lines.append(f"~ {name}: default {old.default}  ->  {new.default}")
    return lines


def describe_changes(old: RuleSet | None, new: RuleSet) -> list[str]:
    """One line per change from ``old`` to ``new`` (``+`` added, ``-`` removed, ``~`` changed)."""
    if old is None:
        return [f"+ {d.name}.{s.name}: {s.when}" for d in new.dimensions for s in d.segments] + [
            f"+ tag {t.name}: {t.reason({})}" for t in new.tags]
    lines: list[str] = []
    before = {d.name: d for d in old.dimensions}
    after = {d.name: d for d in new.dimensions}
    for name, dim in after.items():
        if name not in before:
            lines += [f"+ {name}.{s.name}: {s.when}" for s in dim.segments]
        else:
            lines += _dimension(name, before[name], dim)
    for name, dim in before.items():
        if name not in after:
            lines += [f"- {name}.{s.name}: {s.when}" for s in dim.segments]
    lines += _keyed({t.name: t.reason({}) for t in old.tags}, {t.name: t.reason({}) for t in new.tags},
                    lambda name: f"tag {name}: ")
    lines += _keyed({a.id: a.describe(old.rosters) for a in old.actions},
                    {a.id: a.describe(new.rosters) for a in new.actions}, lambda _: "action ")
    return lines or ["no change to segments, defaults, tags or actions"]
