"""A customer's story (``segmenter customer``, ``GET /customers/{id}``): per dimension the segment, the condition
that put the customer there with its values, what each earlier segment needed and what the customer has, its tags
and why, and what the next due day will change if nothing else happens."""

from __future__ import annotations

from datetime import date
from typing import Any

from segmenter import step
from segmenter.classify import explain
from segmenter.metrics import Value, compute, display
from segmenter.policy import Policy
from segmenter.rules import RuleSet
from segmenter.rules.compiler import COPIED_METRICS
from streams.readmodel.reader import CustomerView
from streams.text import clip


def _tags(ruleset: RuleSet, record: step.CustomerRecord, values: dict[str, Value], policy: Policy
          ) -> list[dict[str, str]]:
    """Each tag with why the customer has it: the manual tag's who and why, or the rule's condition and values."""
    manual = {m.tag: m for m in record.manual_tags}
    profile: dict[str, Any] = dict(record.profile or {})
    if ruleset.copies_metrics:
        profile.update({m: values.get(m) for m in COPIED_METRICS})
    out = []
    for name in record.tags:
        rule = ruleset.tag_rule(name, profile)
        if rule is not None:
            read = rule.condition.metrics if rule.condition is not None else ()
            shown = ", ".join(f"{m}={display(m, values[m], policy)}" for m in read if not m.startswith("profile."))
            why = rule.reason(profile) + (f" ({shown})" if shown else "")
            if name in manual:
                why += f"; also {manual[name].condition()}"
        else:
            why = manual[name].condition() if name in manual else "from an earlier ruleset"
        out.append({"tag": name, "why": why})
    return out


def _describe(ruleset: RuleSet, entries: list[dict[str, Any]]) -> None:
    """Each dimension's and segment's label and the segment's strategy, as the ruleset writes them (None: none)."""
    dimensions = {d.name: d for d in ruleset.dimensions}
    for entry in entries:
        dim = dimensions.get(entry["dimension"])
        entry.update(dimension_label=dim and dim.label, label=dim and dim.labels.get(entry["segment"]),
                     strategy=dim and dim.strategies.get(entry["segment"]))


def story(policy: Policy, view: CustomerView, record: step.CustomerRecord, day: int | None,
          ruleset: RuleSet | None) -> dict[str, Any]:
    """``ruleset``: the one named by the record (None: not found, or none yet)."""
    manual = {m.tag for m in record.manual_tags}
    doc: dict[str, Any] = {
        "customer_id": view.customer_id, "ruleset": record.ruleset or None, "as_of_day": view.doc.get("as_of_day"),
        "due": view.doc.get("due"), "then": [], "note": None, "profile": record.profile,
        "metrics": view.doc["metrics"],
        "dimensions": [{"dimension": d, "segment": s} for d, s in record.segments], "stale_overrides": [],
        "tags": [{"tag": t, "why": "manual" if t in manual else "rules"} for t in record.tags],
    }
    if ruleset is None or day is None:
        doc["note"] = ("no explanation: its ruleset is not on the rules topics" if record.ruleset
                       else "not classified yet: no ruleset was in force")
        return doc
    values = compute(record.state, day, policy, record.profile)
    doc["dimensions"] = [{"dimension": e.dimension, "segment": e.segment,
                          "condition": None if e.condition == "default" else e.condition,
                          "metrics": {k: str(v) for k, v in e.metrics.items()}, "rejected": list(e.rejected)}
                         for e in explain(ruleset, values, policy)]
    doc["tags"] = _tags(ruleset, record, values, policy)
    segments = ruleset.segment_names
    _describe(ruleset, doc["dimensions"])
    pins = {pin.dimension: pin for pin in record.overrides if pin.active(day)}
    for entry in doc["dimensions"]:
        pin = pins.get(entry["dimension"])
        if pin is not None and pin.segment in segments.get(pin.dimension, ()):
            entry.update(segment=pin.segment, override=pin.condition(), rules_say=entry["segment"])
    doc["stale_overrides"] = [f"{pin.dimension} -> {pin.segment} ({pin.condition()}): not a segment of the ruleset "
                              "in force" for pin in pins.values() if pin.segment not in segments.get(pin.dimension, ())]
    _describe(ruleset, doc["dimensions"])  # the pinned segment's label and strategy
    if record.due:  # what the worker will do that day, pins included, if nothing else happens first
        _, changes = step.on_time(record, record.due, ruleset, policy)
        doc["then"] = [f"{c.dimension} {c.before} -> {c.after}" if isinstance(c, step.Change)
                       else f"tag {c.tag} {'added' if c.added else 'removed'}" if isinstance(c, step.TagChange)
                       else f"{c.kind.replace('_', ' ')} on {date.fromordinal(c.day).isoformat()}" for c in changes]
        if not doc["then"]:
            doc["then"] = ["no segment changes (a window boundary is checked then)"]
        doc["due"] = date.fromordinal(record.due).isoformat()
    return doc


def render(doc: dict[str, Any]) -> list[str]:
    """The story as text lines (``segmenter customer`` without ``--json``)."""
    out: list[str] = []
    out.append(f"customer {clip(doc['customer_id'])}  (ruleset {doc['ruleset'] or 'none'}, "
               f"as of stream day {doc['as_of_day'] or '-'}, next due {doc['due'] or '-'})")
    for dim in doc["dimensions"]:
        name = dim["dimension"] + (f" ({dim['dimension_label']})" if dim.get("dimension_label") else "")
        out.append(f"  {name}: {dim['segment']}" + (f" ({dim['label']})" if dim.get("label") else ""))
        if dim.get("strategy"):
            out.append(f"    strategy: {clip(dim['strategy'], 200)}")
        if dim.get("override"):
            out.append(f"    pinned: {dim['override']} (the rules say {dim['rules_say']})")
        elif dim.get("condition"):
            readable = ", ".join(f"{k}={v}" for k, v in dim["metrics"].items())
            out.append(f"    because {dim['condition']}" + (f" ({readable})" if readable else ""))
        for rejected in [] if dim.get("override") else dim.get("rejected", []):
            out.append(f"    not {rejected}")
    for stale in doc["stale_overrides"]:
        out.append(f"  stale override: {stale}")
    if doc["tags"]:
        out.append("  tags: " + ", ".join(f"{t['tag']} ({t['why']})" for t in doc["tags"]))
    if doc["then"]:
        out.append(f"  on {doc['due']}, if nothing else happens: " + "; ".join(doc["then"]))
    if doc["note"]:
        out.append(f"  ({doc['note']})")
    if doc["recent_changes"]:
        out.append(f"  last {len(doc['recent_changes'])} change(s), newest first:")
        for c in doc["recent_changes"]:
            what = (f"{c['dimension']}: {c['from'] or '∅'} -> {c['to']}" if "dimension" in c
                    else f"tag {c['tag']} {'added' if c['added'] else 'removed'}" if "tag" in c
                    else f"{str(c.get('occasion', '?')).replace('_', ' ')} {c.get('date', '')}")
            out.append(f"    {c['at'][:19]}  {what}  ({c['cause']}: {clip(c['why'], 100)})")
    for name, value in doc["metrics"].items():
        out.append(f"  {name:<28} {'-' if value is None else value}")
    return out
