"""Hostile rules files: each refused with one ``InvalidRuleError`` naming the place, within a second of CPU (the
process's own time: a hang by expansion is CPU, and other tests running beside it do not count), running nothing.

docs/security.md lists these refusals and their limits.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter.errors import InvalidRuleError
from segmenter.rules import load_ruleset
from segmenter.rules.loader import MAX_DEPTH, MAX_NODES, MAX_RULES_BYTES

RETAIL = (Path(__file__).resolve().parents[2] / "examples" / "rules" / "retail-value.yaml").read_text()


def _laughs(levels: int) -> str:
    """The "billion laughs": each level's list names the one above nine times (9**levels strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _refused(text: str, match: str) -> str:
    started = time.process_time()
    with pytest.raises(InvalidRuleError, match=match) as info:
        load_ruleset(text, "hostile.yaml")
    assert time.process_time() - started < 1.0
    message = str(info.value)
    assert message.startswith("hostile.yaml"), message
    assert "Traceback" not in message
    return message


def test_yaml_aliases_are_refused_before_any_expansion():
    bomb = _laughs(9)
    assert len(bomb.encode()) < 700
    message = _refused(bomb, "anchors and aliases")
    assert message.startswith("hostile.yaml:1:"), message


def test_an_alias_inside_an_otherwise_valid_ruleset_is_refused():
    text = RETAIL.replace("default: unclassified", "default: &d unclassified\n  other: *d", 1)
    _refused(text, "anchors and aliases")


@pytest.mark.parametrize("text", [
    "a: " + "[" * 5000 + "]" * 5000,
    "a: " + "{a: " * 5000 + "1" + "}" * 5000,
    "".join("  " * i + "a:\n" for i in range(200)),
    "- " * 3000 + "1",
])
def test_deep_nesting_is_refused_without_exhausting_the_stack(text):
    _refused(text, f"nested more than {MAX_DEPTH} levels")


@pytest.mark.parametrize("tag", ["!!python/name:os.system", "!!python/object/apply:os.system", "!!binary",
                                 "!!set", "!custom", "!!str"])
def test_explicit_yaml_tags_are_refused(tag):
    _refused(f"id: {tag} x\n", "YAML tags")


def test_a_file_over_the_size_limit_is_refused_unread():
    _refused("a: " + "x" * MAX_RULES_BYTES, "bytes; a ruleset is at most")


def test_too_many_nodes_are_refused():
    _refused("a: [" + ",".join(["1"] * (MAX_NODES + 1)) + "]", "YAML nodes")


@pytest.mark.parametrize(("text", "match"), [
    ("id: \x07x\n", r"special characters are not allowed \(U\+0007\)"),
    ("? [a]\n: 1\n", "a key is a plain name"),
    ("id: x\nversion: " + "9" * 5000 + "\n", "cannot read this value"),
    ("a: {<<: {b: 1}}", "cannot read this value"),
    ("a: [", "not valid YAML"),
    ("\t", "not valid YAML"),
    ("", "the file is empty"),
    ("- 1", "a ruleset is a mapping"),
])
def test_malformed_yaml_gets_one_line_with_its_place(text, match):
    _refused(text, match)


@pytest.mark.parametrize(("message", "match"), [
    ("{customer_id.__class__.__mro__}", r"the field \{customer_id.__class__.__mro__\} is not allowed"),
    ("{customer_id[0]}", "is not allowed"),
    ("{customer_id:>10000000}", "may not carry a format"),
    ("{customer_id!r}", "may not carry a format or a conversion"),
    ("{}", "an empty field"),
    ("{0}", r"the field \{0\} is not allowed"),
    ("{customer_id", "bad message template"),
])
def test_alert_templates_take_only_bare_known_fields(message, match):
    old = 'message: "{customer_id} is now high value: call them ({manager}, {team})"'
    assert old in RETAIL
    _refused(RETAIL.replace(old, f"message: {message!r}", 1).replace("retail", "hostile"), match)


@pytest.mark.parametrize(("old", "new", "match"), [
    ("valid_for: 30d", "valid_for: 3000000d", "longer than 3660d"),
    ("cooldown: 30d", "cooldown: 99999999999h", "longer than 3660d"),
    ("cooldown: 30d", "cooldown: " + "9" * 40 + "s", "String should match pattern|not a duration"),
    ("percent: 15", "value: 1e300", "less than or equal to 1000000000000"),
    ("version: 1", "version: 99999999999", "less than or equal to 2147483647"),
])
def test_durations_and_numbers_in_a_ruleset_are_bounded(old, new, match):
    assert old in RETAIL
    _refused(RETAIL.replace(old, new, 1), match)


def test_the_largest_accepted_duration_still_compiles():
    ruleset = load_ruleset(RETAIL.replace("valid_for: 30d", "valid_for: 3660d", 1))
    assert ruleset.actions[0].coupon is not None
    assert ruleset.actions[0].coupon.valid_for_s == 3660 * 86_400


def _loads_or_refuses(text: str) -> None:
    message = ""
    try:
        load_ruleset(text, "fuzz.yaml")
    except InvalidRuleError as exc:
        message = str(exc)
    assert message == "" or message.startswith("fuzz.yaml"), message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_a_ruleset_or_one_refusal(text):
    _loads_or_refuses(text)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_change_to_a_real_ruleset_is_a_ruleset_or_one_refusal(data):
    at = data.draw(st.integers(0, len(RETAIL)))
    cut = data.draw(st.integers(0, 20))
    insert = data.draw(st.text(alphabet="&*!{}[]:-#'\"\n\t |>%@`,?<=0123456789.ad", max_size=12))
    _loads_or_refuses(RETAIL[:at] + insert + RETAIL[at + cut:])
