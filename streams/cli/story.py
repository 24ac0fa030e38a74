"""``segmenter customer``'s ruleset lookup: the story itself is ``streams.readmodel.story``."""

from __future__ import annotations

import asyncio

from segmenter.errors import SegmenterError
from segmenter.rules import RuleSet, load_ruleset
from streams.kafka.control import latest_rules, rules_history
from streams.settings import Settings


def ruleset_of(settings: Settings, key: str) -> RuleSet | None:
    """The ruleset ``id@version`` from the rules history (or the rules topic, for rulesets applied before the
    history was kept); None when neither has it."""
    ruleset_id, _, version = key.rpartition("@")
    texts = [a.yaml for a in asyncio.run(rules_history(settings, ruleset_id)) if str(a.version) == version]
    if not texts:
        latest = asyncio.run(latest_rules(settings)).get(ruleset_id)
        texts = [latest] if latest else []
    for text in texts:
        try:
            ruleset = load_ruleset(text, "rules topic", settings.money_scale)
        except SegmenterError:
            continue
        if ruleset.key == key:
            return ruleset
    return None
