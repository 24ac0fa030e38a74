"""Input strings in log lines: cut, escaped, with their length."""

from __future__ import annotations

from streams.text import clip


def test_a_long_string_is_cut_with_its_length():
    shown = clip("C" * 100_000)
    assert shown == "C" * 80 + "… (100,000 chars)"


def test_control_characters_are_escaped_and_short_text_is_kept():
    assert clip("evil\nINFO forged line\x1b[31m") == "evil\\nINFO forged line\\x1b[31m"
    assert clip("客户 C0001") == "客户 C0001"
    assert "\n" not in clip(b"\xff\n" * 50)
    assert clip(b"\xff").startswith("\\xff")
