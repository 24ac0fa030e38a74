"""The README's examples are real: its console output comes from the commands it shows."""

import re
from pathlib import Path

from streams.cli.main import main

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


def test_readme_ruleset_is_the_shipped_example():
    yaml_block = re.search(r"```yaml\n(.*?)```", README, re.S).group(1)
    shipped = (ROOT / "examples/rules/retail-value.yaml").read_text()
    body = [line for line in yaml_block.splitlines() if line.strip()]
    assert all(line in shipped for line in body)


def test_readme_shows_both_commands():
    assert "make run" in README
    assert "make test" in README
