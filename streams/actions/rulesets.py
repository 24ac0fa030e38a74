"""The rulesets the action worker knows (``KnownRulesets``, a part the ``Actor`` holds): every version applied, learnt
from control records and read from the rules topic and its history, so that a change made under an old version
fires that version's actions."""

from __future__ import annotations

import logging
from collections import Counter

from segmenter.actions import ChangeView
from segmenter.errors import InvalidRuleError
from segmenter.rules import RuleSet, load_ruleset
from streams.kafka.control import latest_rules, rules_history
from streams.names import Names
from streams.settings import Settings
from streams.text import clip

log = logging.getLogger("segmenter.actions")


class KnownRulesets:
    """Rulesets by (id, version); ``stats`` counts those refused (a version rewritten) and those unknown."""

    def __init__(self, settings: Settings, stats: Counter[str]) -> None:
        self.settings, self.stats = settings, stats
        self.by_version: dict[tuple[str, int], RuleSet] = {}

    def learn(self, text: str, source: str) -> RuleSet | None:
        """A ruleset's text, from a control record or the rules topic (None: it does not load)."""
        try:
            ruleset = load_ruleset(text, source, self.settings.money_scale)
        except InvalidRuleError as exc:
            log.warning("ignoring a ruleset that does not load: %s", exc)
            return None
        known = self.by_version.get((ruleset.id, ruleset.version))
        if known is not None and known.source and known.source != ruleset.source:
            self.stats["rules_refused"] += 1
            log.error("refused %s v%d read from %s: its text differs from the one known for that version, and a "
                      "version is never rewritten", clip(ruleset.id), ruleset.version, source)
            return known
        self.by_version[ruleset.id, ruleset.version] = ruleset
        return ruleset

    async def read(self) -> None:
        """Every version from the rules history and the rules topic."""
        for applied in await rules_history(self.settings):  # every version, for changes made under an old one
            self.learn(applied.yaml, "rules history")
        for text in (await latest_rules(self.settings)).values():
            self.learn(text, "rules topic")

    def action_ids(self) -> set[str]:
        """The ids of every action of every ruleset known here."""
        return {a.id for ruleset in self.by_version.values() for a in ruleset.actions}

    def publish_topics(self, names: Names) -> list[str]:
        """The topics of every publish action of the rulesets known here (``rules apply`` created them)."""
        return sorted({names.publish(a.publish.topic) for r in self.by_version.values() for a in r.actions
                       if a.publish is not None})

    async def of(self, view: ChangeView) -> RuleSet:
        """The ruleset a change was made under, reading the rules topic again when it is not known yet."""
        return await self.of_version(view.ruleset_id, view.ruleset_version)

    async def of_version(self, ruleset_id: str, version: int) -> RuleSet:
        if (ruleset_id, version) not in self.by_version:
            await self.read()
        return self.cached_of(ruleset_id, version)

    def cached(self, view: ChangeView) -> RuleSet:
        return self.cached_of(view.ruleset_id, view.ruleset_version)

    def cached_of(self, ruleset_id: str, version: int) -> RuleSet:
        """The ruleset as known now: an unknown version takes its latest known predecessor's actions (the topic is
        compacted), an unknown id none (counted)."""
        found = self.by_version.get((ruleset_id, version))
        if found is not None:
            return found
        known = sorted((v, r) for (i, v), r in self.by_version.items() if i == ruleset_id)
        if known:  # the topic is compacted: an older version may be gone; its successor's actions apply
            self.by_version[ruleset_id, version] = known[-1][1]
            log.warning("ruleset %s v%d is unknown here; using v%d's actions", clip(ruleset_id), version,
                        known[-1][0])
            return known[-1][1]
        self.stats["rules_unknown"] += 1
        log.error("ruleset %s v%d is unknown (not on the rules topic): its changes trigger no actions",
                  clip(ruleset_id), version)
        empty = RuleSet(ruleset_id, version, "", (), "")
        self.by_version[ruleset_id, version] = empty
        return empty
