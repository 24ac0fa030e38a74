"""The README's examples are real: its console output comes from the commands it shows."""

import re
from pathlib import Path

from streams.cli.main import main
from streams.cli.offline_commands import with_settings_table
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _console_block(command: str) -> list[str]:
    match = re.search(rf"```console\n\$ {re.escape(command)}\n(.*?)```", README, re.S)
    assert match, f"README has no console block for {command!r}"
    return match.group(1).rstrip("\n").splitlines()


def test_readme_rules_check_output_is_what_the_command_prints(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["rules", "check", "examples/rules/retail-value.yaml"]) == 0
    assert capsys.readouterr().out.rstrip("\n").splitlines() == _console_block(
        "segmenter rules check examples/rules/retail-value.yaml")


def test_readme_error_example_is_what_a_misspelt_metric_prints(tmp_path, capsys, monkeypatch):
    text = (ROOT / "examples/rules/retail-value.yaml").read_text().replace(
        "amount_12m >= 10000", "amout_12m >= 10000")
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert main(["rules", "check", "bad.yaml"]) == 1
    assert capsys.readouterr().err.splitlines() == _console_block("segmenter rules check bad.yaml")


def in_order(part: list[str], whole: list[str]) -> bool:
    """Every line of ``part`` is a whole line of ``whole``, indentation included, in the same order."""
    lines = iter(whole)
    return all(any(line == other for other in lines) for line in part)


def test_readme_rulesets_are_shipped_examples_in_order():
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    shipped = [p.read_text().splitlines() for p in sorted((ROOT / "examples/rules").glob("*.yaml"))]
    assert max(len(b.splitlines()) for b in blocks) > 10
    for block in blocks:
        body = [line for line in block.splitlines() if line.strip()]
        assert any(in_order(body, example) for example in shipped), block


def test_the_order_check_catches_reordered_and_reindented_lines():
    assert in_order(["a:", "  b: 1"], ["a:", "  x: 0", "  b: 1"])
    assert not in_order(["  b: 1", "a:"], ["a:", "  b: 1"])
    assert not in_order(["a:", "b: 1"], ["a:", "  b: 1"])


def test_readme_shows_both_commands_first():
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for line in re.search(r"```[a-z]*\n(.*?)```", section, re.S).group(1)
                .splitlines() if line and not line.startswith(" ")]
    assert commands == ["make run", "make test"]


def test_the_readme_settings_table_is_every_setting_as_the_settings_class_says():
    assert with_settings_table(README) == README, "stale: run `make readme` (segmenter settings --readme README.md)"
    for name in Settings.model_fields:
        assert f"`SEGMENTER_{name.upper()}`" in README


def test_the_readme_stays_a_page_for_users():
    assert len(README.splitlines()) <= 300
    first_screen = "\n".join(README.splitlines()[:12])
    assert "docs/integrating.md" in first_screen
