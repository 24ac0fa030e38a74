"""The streaming worker against a real broker and Redis equals the offline classification."""

from __future__ import annotations

import base64
import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from streams.cli.demo_data import DemoSpec, generate
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import (
    RETAIL,
    changes_by_customer,
    classify_csv,
    consume_all,
    produce,
    read_csv,
    row_differences,
)

pytestmark = pytest.mark.integration


def _late_events(paths: dict[str, Path], out: Path) -> list[dict[str, str]]:
    """Purchases and refunds dated days before the stream's newest time (disorder), plus duplicates."""
    rng = random.Random(5)
    with paths["transactions"].open() as handle:
        rows = list(csv.DictReader(handle))
    late = []
    for i in range(120):
        base = rng.choice(rows)
        when = datetime(2026, 6, 28, tzinfo=UTC) - timedelta(days=rng.uniform(0, 40))
        late.append({**base, "event_id": f"late-{i}", "occurred_at": when.isoformat(),
                     "kind": "refund" if i % 7 == 0 else "purchase", "order_id": f"late-o{i}"})
    duplicates = rng.sample(rows, 60)  # same event_id again: must change nothing
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + late + duplicates)
    return late + duplicates


def _transaction_json(row: dict[str, str]) -> bytes:
    return orjson.dumps({"event_id": row["event_id"], "customer_id": row["customer_id"],
                         "occurred_at": row["occurred_at"], "kind": row["kind"], "amount": row["amount"],
                         "order_id": row["order_id"]})


BAD = [
    (b"C0000001", b"{not json"),
    (b"C0000001", orjson.dumps({"event_id": "b1", "occurred_at": "2026-06-01T00:00:00Z", "amount": "1",
                                "order_id": "o"})),  # no customer
    (b"C0000002", orjson.dumps({"event_id": "b2", "customer_id": "C0000002", "occurred_at": "2026-06-01T00:00:00Z",
                                "amount": "twelve", "order_id": "o"})),
    (b"C0000003", orjson.dumps({"event_id": "b3", "customer_id": "C0000003", "occurred_at": "2099-01-01T00:00:00Z",
                                "amount": "1", "order_id": "o"})),  # beyond the future skew
    (b"C0000004", orjson.dumps({"event_id": "b4", "customer_id": "C0000005", "occurred_at": "2026-06-01T00:00:00Z",
                                "amount": "1", "order_id": "o"})),  # key is not the customer
]


def test_stream_equals_offline_classification_through_time(system, tmp_path):
    settings = system.settings
    names = Names(settings.topic_prefix)
    demo = generate(DemoSpec(customers=400, seed=3), tmp_path / "demo")
    paths = {**demo, "transactions": tmp_path / "all-transactions.csv"}
    extra = _late_events(demo, paths["transactions"])

    system.start_worker()
    assert system.run("rules", "apply", str(RETAIL)) == 0
    for kind in ("transactions", "interactions", "profiles"):
        assert system.run("import", kind, str(demo[kind]), "--quiet") == 0
    produce(settings, names.transactions, [(r["customer_id"].encode(), _transaction_json(r)) for r in extra])
    produce(settings, names.transactions, BAD)

    for as_of in ("2026-06-30", "2026-09-15", "2026-12-31"):
        assert system.run("tick", "--to", f"{as_of}T23:59:59+00:00") == 0
        assert system.run("wait", "--timeout", "120") == 0
        exported = tmp_path / f"export-{as_of}.csv"
        assert system.run("export", "--out", str(exported)) == 0
        expected = classify_csv(system.run, paths, as_of, tmp_path / f"classify-{as_of}.csv")
        assert row_differences(read_csv(exported), expected) == {}, f"stream and offline differ as of {as_of}"

    final = read_csv(tmp_path / "export-2026-12-31.csv")
    segments_seen = {row["value"] for row in final.values()}
    assert "churn_risk" in segments_seen  # time alone moved customers
    replayed = changes_by_customer(consume_all(settings, names.segment_changes))
    assert {c: d["value"] for c, d in replayed.items()} == {c: row["value"] for c, row in final.items()}

    model = ReadModel.of(settings)
    counts: dict[str, int] = {}
    for row in final.values():
        counts[row["value"]] = counts.get(row["value"], 0) + 1
    assert {seg: n for _, seg, n, _ in model.report(2)} == counts

    letters = [orjson.loads(v) for _, v in consume_all(settings, names.dead_letters)]
    assert sorted(base64.b64decode(d["value_b64"]) for d in letters) == sorted(v for _, v in BAD)
    assert all(d["source_topic"] == names.transactions and d["error_message"] for d in letters)
