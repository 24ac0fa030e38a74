"""``segmenter customer``'s ruleset lookup: the story itself is ``streams.readmodel.story``."""

from __future__ import annotations

import asyncio

from segmenter.errors import SegmenterError
from segmenter.rules import RuleSet, load_ruleset
from segmenter.rules.rulebook import combine, keys_of
from streams.kafka.control import latest_rules, rules_history
from streams.settings import Settings


def ruleset_of(settings: Settings, key: str) -> RuleSet | None:
    """The ruleset ``id@version`` (or the rulesets a combined key ``a@1+b@2`` names, combined) from the rules history
    (or the rules topic, for rulesets applied before the history was kept); None when one of them is in neither."""
    history = asyncio.run(rules_history(settings))
    latest: dict[str, str] | None = None
    parts = []
    for part_key in keys_of(key):
        ruleset_id, _, version = part_key.rpartition("@")
        texts = [a.yaml for a in history if a.id == ruleset_id and str(a.version) == version]
        if not texts:
            latest = latest if latest is not None else asyncio.run(latest_rules(settings))
            texts = [latest[ruleset_id]] if ruleset_id in latest else []
        found = None
        for text in texts:
            try:
                ruleset = load_ruleset(text, "rules topic", settings.money_scale)
            except SegmenterError:
                continue
            if ruleset.key == part_key:
                found = ruleset
        if found is None:
            return None
        parts.append(found)
    return combine(parts)
