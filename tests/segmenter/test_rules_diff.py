"""`rules history` says what changed between two versions in the operator's words."""

from pathlib import Path

from segmenter.rules import load_ruleset
from segmenter.rules.diff import describe_changes

RETAIL = (Path(__file__).resolve().parents[2] / "examples" / "rules" / "retail-value.yaml").read_text()


def test_first_version_lists_every_segment():
    lines = describe_changes(None, load_ruleset(RETAIL))
    assert lines[0] == "+ value.churn_risk: purchases_6m == 0 and purchases_12m > 0"
    assert len(lines) == 4


def test_changed_added_removed_reordered_default_and_actions():
    old = load_ruleset(RETAIL)
    text = (RETAIL.replace("version: 1", "version: 2")
            .replace("amount_12m >= 10000", "amount_12m >= 8000")
            .replace("default: unclassified", "default: other")
            .replace("    cooldown: 30d\n", "    cooldown: 60d\n"))
    lines = describe_changes(old, load_ruleset(text))
    assert "~ value.high_value: purchases_12m >= 10 and amount_12m >= 10000  ->  purchases_12m >= 10 and " \
           "amount_12m >= 8000" in lines
    assert "~ value: default unclassified  ->  other" in lines
    assert [line for line in lines if line.startswith("~ action")] == [
        next(line for line in lines if "winback_coupon" in line)]
    assert len(lines) == 3


def test_no_change_is_said():
    ruleset = load_ruleset(RETAIL)
    assert describe_changes(ruleset, ruleset) == ["no change to segments, defaults, tags or actions"]


def test_tags_added_removed_and_changed_are_described():
    base = (Path(__file__).resolve().parents[2] / "examples/rules/crm.yaml").read_text()
    old = load_ruleset(base)
    vip = "  - name: vip\n    when: amount_12m >= 50000\n"
    new = load_ruleset(base.replace("version: 1", "version: 2").replace("complaints_6m >= 2", "complaints_6m >= 3")
                       .replace("  - name: region:{profile.region}\n", vip))
    assert describe_changes(old, new) == [
        "~ tag risk:complaints: complaints_6m >= 2  ->  complaints_6m >= 3",
        "+ tag vip: amount_12m >= 50000",
        "- tag region:{profile.region}: copies profile.region",
    ]
