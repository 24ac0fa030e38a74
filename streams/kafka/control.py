"""The control and rules topics: control records for every partition (ticks, rule adoptions), rulesets."""

from __future__ import annotations

from typing import Any

import orjson

from segmenter.rules import RuleSet
from streams.kafka.reading import read_topic
from streams.kafka.topics import Record, create_topics, produce_records
from streams.names import Names
from streams.settings import Settings


def _control_records(settings: Settings, doc: dict[str, Any]) -> list[Record]:
    """The same control record for every partition of the control topic."""
    value = orjson.dumps(doc)
    return [(Names(settings.topic_prefix).control, doc["type"].encode(), value, p)
            for p in range(settings.partitions)]


async def send_control(settings: Settings, doc: dict[str, Any]) -> None:
    await create_topics(settings)
    await produce_records(settings, _control_records(settings, doc))


async def apply_rules(settings: Settings, ruleset: RuleSet, source: str) -> None:
    """The document on the rules topic (for ``rules show``), then one adoption record per partition."""
    await create_topics(settings)
    rules: Record = (Names(settings.topic_prefix).rules, ruleset.id.encode(), ruleset.source.encode(), None)
    control = _control_records(settings, {"type": "rules", "yaml": ruleset.source, "source": source})
    await produce_records(settings, [rules, *control])


async def latest_rules(settings: Settings) -> dict[str, str]:
    """The newest document of each ruleset id on the rules topic."""
    records = await read_topic(settings, Names(settings.topic_prefix).rules)
    return {key.decode(): value.decode() for key, value in records if key is not None}
