"""The control and rules topics: control records for every partition (ticks, rule adoptions), the rulesets in
force and every version ever applied; and the operators' records of one customer (overrides, manual tags)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.events import ManualTag, Override
from schemas.ruleset import RuleSetApplied
from segmenter.errors import SegmenterError
from segmenter.rules import RuleSet, load_ruleset
from segmenter.rules.rulebook import clashes
from streams.kafka.reading import read_topic
from streams.kafka.topics import Record, create_topics, customer_partition, produce_records
from streams.names import Names, customer_key
from streams.settings import Settings


def _control_records(settings: Settings, doc: dict[str, Any]) -> list[Record]:
    """The same control record for every partition of the control topic."""
    value = orjson.dumps(doc)
    return [(Names(settings.topic_prefix).control, doc["type"].encode(), value, p)
            for p in range(settings.partitions)]


async def send_control(settings: Settings, doc: dict[str, Any]) -> None:
    await create_topics(settings)
    await produce_records(settings, _control_records(settings, doc))


class RulesRefusedError(SegmenterError):
    """A ruleset that may not be applied as it is (a version reused with other content)."""


async def rules_history(settings: Settings, ruleset_id: str | None = None) -> list[RuleSetApplied]:
    """Every version applied (of ``ruleset_id``, or of every ruleset), by id and version."""
    found: dict[tuple[str, int], RuleSetApplied] = {}
    for _, value in await read_topic(settings, Names(settings.topic_prefix).rules_history):
        doc = RuleSetApplied.model_validate_json(value)
        found.setdefault((doc.id, doc.version), doc)  # the first one applied is the version's text for good
    return [doc for key, doc in sorted(found.items()) if ruleset_id in (None, doc.id)]


async def apply_rules(settings: Settings, ruleset: RuleSet, source: str, author: str = "unknown",
                      message: str = "") -> RuleSetApplied:
    """Record the version in the history (refused when the version was applied before with other content), put
    the document on the rules topic (for ``rules show``), then one adoption record per partition."""
    names = Names(settings.topic_prefix)
    await create_topics(settings, [names.publish(a.publish.topic) for a in ruleset.actions if a.publish])
    clash = clashes(ruleset, await rulesets_in_force(settings))
    if clash:
        raise RulesRefusedError(f"{ruleset.id} v{ruleset.version} cannot be in force beside the others: "
                                + "; ".join(clash) + " (names are unique across the rulesets in force)")
    history = await rules_history(settings, ruleset.id)
    before = next((doc for doc in history if doc.version == ruleset.version), None)
    if before is not None and before.yaml != ruleset.source:
        newest = max(doc.version for doc in history)
        raise RulesRefusedError(
            f"{ruleset.id} v{ruleset.version} was applied on {before.applied_at:%Y-%m-%d %H:%M} UTC by "
            f"{before.author} with other content, and a version is never rewritten: give the changed ruleset "
            f"version {newest + 1} (`segmenter rules history {ruleset.id}` lists them)")
    applied = before or RuleSetApplied(id=ruleset.id, version=ruleset.version, yaml=ruleset.source, source=source,
                                       author=author, message=message, applied_at=datetime.now(UTC))
    if before is None:
        applied = await _claim_version(settings, applied)
    records: list[Record] = [(names.rules, ruleset.id.encode(), ruleset.source.encode(), None)]
    records += _control_records(settings, {"type": "rules", "yaml": ruleset.source, "source": source})
    await produce_records(settings, records)
    return applied


async def _claim_version(settings: Settings, applied: RuleSetApplied) -> RuleSetApplied:
    """Append the version to the history, then read it back: the first record of ``id@version`` in the log is the
    version's text. Two applies of one version at the same moment both append; the one whose record came second
    with other content writes the first one's record again (so compaction, which keeps a key's last record, keeps
    the first text) and is refused, having published nothing else."""
    names = Names(settings.topic_prefix)
    key = f"{applied.id}@{applied.version}".encode()
    await produce_records(settings, [(names.rules_history, key, applied.model_dump_json().encode(), None)])
    first = next(doc for doc in await rules_history(settings, applied.id) if doc.version == applied.version)
    if first.yaml == applied.yaml:
        return first
    await produce_records(settings, [(names.rules_history, key, first.model_dump_json().encode(), None)])
    raise RulesRefusedError(
        f"{applied.id} v{applied.version} was applied at the same moment by {first.author} with other content, and "
        f"a version is never rewritten: give the changed ruleset version {applied.version + 1}")


async def latest_rules(settings: Settings) -> dict[str, str]:
    """The newest document of each ruleset id on the rules topic: the rulesets in force (a retired one's tombstone
    takes it out)."""
    out: dict[str, str] = {}
    for key, value in await read_topic(settings, Names(settings.topic_prefix).rules):
        if key is None:
            continue
        if value is None:
            out.pop(key.decode(), None)
        else:
            out[key.decode()] = value.decode()
    return out


async def retire_rules(settings: Settings, ruleset_id: str) -> list[str]:
    """Take ``ruleset_id`` out of force: a tombstone on the rules topic, then one retirement record per partition
    (each worker's customers leave its dimensions). Returns the ids still in force; refused when it is not in force
    or is the only one."""
    in_force = await latest_rules(settings)
    if ruleset_id not in in_force:
        raise RulesRefusedError(f"{ruleset_id} is not in force (in force: {', '.join(sorted(in_force)) or 'none'})")
    if len(in_force) == 1:
        raise RulesRefusedError(f"{ruleset_id} is the only ruleset in force: apply another before retiring it")
    names = Names(settings.topic_prefix)
    records: list[Record] = [(names.rules, ruleset_id.encode(), None, None)]
    records += _control_records(settings, {"type": "retire", "id": ruleset_id})
    await produce_records(settings, records)
    return sorted(set(in_force) - {ruleset_id})


async def rulesets_in_force(settings: Settings) -> list[RuleSet]:
    """The newest version of each ruleset id on the rules topic, loaded (one that no longer loads is left out)."""
    out = []
    for text in (await latest_rules(settings)).values():
        try:
            out.append(load_ruleset(text, "rules topic", settings.money_scale))
        except SegmenterError:
            continue
    return out


async def active_segments(settings: Settings) -> dict[str, set[str]]:
    """dimension -> its segments (the default included) in the rulesets in force."""
    out: dict[str, set[str]] = {}
    for ruleset in await rulesets_in_force(settings):
        for dimension, names in ruleset.segment_names.items():
            out.setdefault(dimension, set()).update(names)
    return out


async def send_customer_record(settings: Settings, topic: str, name: str, doc: Override | ManualTag) -> None:
    """An operator's record of a customer (an override of dimension ``name``, a manual tag ``name``), keyed by
    customer and name, into the partition of the customer's data, where the owning worker reads it."""
    await produce_records(settings, [(topic, customer_key(doc.customer_id, name), doc.model_dump_json().encode(),
                                      customer_partition(settings, doc.customer_id))])
