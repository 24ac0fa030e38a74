"""Several rulesets in force at once (value, lifecycle, ABC, RFM, industry …), each versioned by its own owner.

The worker classifies with one ``RuleSet``: ``combine`` makes it from every ruleset in force, their dimensions,
tags, actions and rosters side by side, in the order of their ids. One ruleset combines to itself, so a worker with
one ruleset in force runs exactly as it always did. A combined ruleset's ``key`` names every part
(``abc@1+crm@3``): a customer classified under it is reclassified whenever any part changes, and its change ids
stay deterministic. ``owner`` says which part a dimension or tag belongs to: a change is published under its
owner's id and version, so actions and explanations are found as they are for one ruleset.

Dimension names, action ids and roster names must be unique across the rulesets in force: ``clashes`` says where
they are not (``rules apply`` refuses such a ruleset; a worker leaves one out and logs why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from segmenter.rules.compiler import RuleSet

SEPARATOR = "+"  # between the parts of a combined key: ids never hold it


def clashes(candidate: RuleSet, in_force: Iterable[RuleSet]) -> list[str]:
    """Why ``candidate`` cannot be in force beside ``in_force`` (another version of its id is replaced by it)."""
    out = []
    for other in in_force:
        if other.id == candidate.id:
            continue
        for what, mine, theirs in (
                ("dimension", {d.name for d in candidate.dimensions}, {d.name for d in other.dimensions}),
                ("action", {a.id for a in candidate.actions}, {a.id for a in other.actions}),
                ("roster", set(candidate.rosters), set(other.rosters))):
            for name in sorted(mine & theirs):
                out.append(f"{what} {name!r} is also in {other.key}, which is in force")
    return out


def combine(rulesets: Iterable[RuleSet]) -> RuleSet | None:
    """One ruleset classifying by every one of ``rulesets`` (by id; None for none, the ruleset itself for one)."""
    parts = sorted({r.id: r for r in rulesets}.values(), key=lambda r: r.id)
    if len(parts) <= 1:
        return parts[0] if parts else None
    first = parts[0]
    return RuleSet(
        SEPARATOR.join(p.id for p in parts), 0, "; ".join(p.description for p in parts if p.description),
        tuple(d for p in parts for d in p.dimensions), "", tuple(a for p in parts for a in p.actions),
        {name: roster for p in parts for name, roster in p.rosters.items()}, first.money_scale,
        tuple(t for p in parts for t in p.tags), parts=tuple(parts))


def parts_of(ruleset: RuleSet | None) -> tuple[RuleSet, ...]:
    """The rulesets ``ruleset`` combines (itself alone when it combines none)."""
    if ruleset is None:
        return ()
    return ruleset.parts or (ruleset,)


def keys_of(key: str) -> list[str]:
    """The ``id@version`` of every part a (combined) key names."""
    return [part for part in key.split(SEPARATOR) if part]


def owner(ruleset: RuleSet, dimension: str | None = None, tag: str | None = None,
          profile: Mapping[str, str | None] | None = None) -> RuleSet:
    """The part of ``ruleset`` that holds ``dimension`` (or gives ``tag`` to a customer with ``profile``); the first
    part when none does (a manual tag, a dimension that left)."""
    if not ruleset.parts:
        return ruleset
    parts = ruleset.parts
    for part in parts:
        if dimension is not None and any(d.name == dimension for d in part.dimensions):
            return part
        if tag is not None and part.tag_rule(tag, profile or {}) is not None:
            return part
    return parts[0]
