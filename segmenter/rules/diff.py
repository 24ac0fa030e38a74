"""What changed between two versions of a ruleset, in the operator's words: segments added, removed or given
another condition, their order, defaults, and actions."""

from __future__ import annotations

from segmenter.rules.compiler import CompiledDimension, RuleSet


def _dimension(name: str, old: CompiledDimension, new: CompiledDimension) -> list[str]:
    lines = []
    before = {s.name: s.when for s in old.segments}
    after = {s.name: s.when for s in new.segments}
    for segment, when in after.items():
        if segment not in before:
            lines.append(f"+ {name}.{segment}: {when}")
        elif before[segment] != when:
            lines.append(f"~ {name}.{segment}: {before[segment]}  ->  {when}")
    lines += [f"- {name}.{segment}: {when}" for segment, when in before.items() if segment not in after]
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
        return [f"+ {d.name}.{s.name}: {s.when}" for d in new.dimensions for s in d.segments]
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
    old_actions = {a.id: a.describe(old.rosters) for a in old.actions}
    new_actions = {a.id: a.describe(new.rosters) for a in new.actions}
    for action_id, text in new_actions.items():
        if action_id not in old_actions:
            lines.append(f"+ action {text}")
        elif old_actions[action_id] != text:
            lines.append(f"~ action {old_actions[action_id]}  ->  {text}")
    lines += [f"- action {text}" for action_id, text in old_actions.items() if action_id not in new_actions]
    return lines or ["no change to segments, defaults or actions"]
