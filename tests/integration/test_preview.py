"""``rules preview``: the matrix a candidate ruleset would cause equals, cell by cell, what applying it then
does; previewing changes nothing; ``classify --compare`` prints the same matrix from the CSV exports."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import orjson

from streams.cli.demo_data import DemoSpec, generate
from streams.names import Names
from tests.integration.helpers import RETAIL, consume_all, read_csv


def _cells(doc: dict) -> dict[tuple[str, str, str], tuple[int, Decimal]]:
    return {(c["dimension"], c["from"], c["to"]): (c["customers"], Decimal(c["amount_12m"])) for c in doc["cells"]}


def test_preview_equals_what_apply_then_does_and_changes_nothing(system, tmp_path, capsys):
    v2 = tmp_path / "v2.yaml"
    v2.write_text(RETAIL.read_text().replace("version: 1", "version: 2").replace(">= 10000", ">= 8000")
                  .replace("purchases_6m == 0 and purchases_12m > 0", "purchases_6m == 0 and purchases_12m > 1"))
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker()
    demo = generate(DemoSpec(customers=1500, seed=21), tmp_path / "demo")
    assert system.run("import", "transactions", str(demo["transactions"]), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30T23:59:59+00:00") == 0
    assert system.run("wait", "--timeout", "120") == 0
    names = Names(system.settings.topic_prefix)
    before_csv, again_csv, after_csv = tmp_path / "before.csv", tmp_path / "again.csv", tmp_path / "after.csv"
    assert system.run("export", "--out", str(before_csv)) == 0
    changes_before = len(consume_all(system.settings, names.segment_changes))
    capsys.readouterr()

    assert system.run("rules", "preview", str(v2), "--format", "json", "--quiet") == 0
    previewed = orjson.loads(capsys.readouterr().out)
    assert previewed["customers"] == 1500
    assert system.run("wait", "--timeout", "60") == 0
    assert system.run("export", "--out", str(again_csv)) == 0
    assert read_csv(again_csv) == read_csv(before_csv)  # preview wrote nothing
    assert len(consume_all(system.settings, names.segment_changes)) == changes_before

    assert system.run("rules", "apply", str(v2)) == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert system.run("export", "--out", str(after_csv)) == 0
    before, after = read_csv(before_csv), read_csv(after_csv)
    actual: dict[tuple[str, str, str], list] = defaultdict(lambda: [0, Decimal(0)])
    for customer, row in after.items():
        cell = actual["value", before[customer]["value"], row["value"]]
        cell[0] += 1
        cell[1] += Decimal(row["amount_12m"] or "0")
    assert _cells(previewed) == {key: (n, amount) for key, (n, amount) in actual.items()}
    moving = {key: n for key, (n, _) in _cells(previewed).items() if key[1] != key[2]}
    assert sum(moving.values()) > 10, moving  # the candidate does move customers, both ways of the change
    samples = {(c["from"], c["to"]): c["samples"] for c in previewed["cells"] if c["from"] != c["to"]}
    for (was, now), customers in samples.items():
        assert customers
        assert all(before[c]["value"] == was and after[c]["value"] == now for c in customers)

    capsys.readouterr()
    assert system.run("classify", "--compare", str(RETAIL), str(v2), "--transactions", str(demo["transactions"]),
                      "--as-of", "2026-06-30", "--format", "json", "--quiet") == 0
    assert _cells(orjson.loads(capsys.readouterr().out)) == _cells(previewed)
