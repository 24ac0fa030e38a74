"""Behaviour the other end-to-end tests do not reach: the wall clock, profile changes in the stream, Redis's
per-segment amount totals, a state cache smaller than the population, two workers rebalancing live, and the
action worker's dead letters, unknown rulesets and round-robin routing."""

from __future__ import annotations

import asyncio
import base64
import csv
import socket
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from schemas.outputs import Alert, DeadLetter, SegmentChange
from segmenter.actions import RosterSpec
from streams.actions.ledger import RECORDED_PER_CALL, ActionStore
from streams.cli.demo_data import DemoSpec, generate
from streams.kafka.topics import produce_records
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import (
    RETAIL,
    change_doc,
    classify_csv,
    consume_all,
    read_csv,
    row_differences,
    wait_until,
)

REGION = """  region:
    segments:
      - {name: east, when: "profile.region == 'east'"}
    default: elsewhere
"""


def _with_region(tmp_path: Path) -> Path:
    """The retail rules plus a dimension read from the profile."""
    text = RETAIL.read_text()
    rules = tmp_path / "retail-region.yaml"
    rules.write_text(text.replace("actions:\n", REGION + "actions:\n", 1))
    return rules


def _counters(system, done) -> dict[str, dict[str, int]]:
    """The workers' counters (published every few seconds) once ``done`` holds for them."""
    return wait_until(ReadModel.of(system.settings).counters, done, 30, "the workers' counters")


def test_wall_clock_profiles_amount_totals_and_a_state_cache_smaller_than_the_population(system, tmp_path):
    """In wall mode stream time is today with no tick, so the read model equals classify as of today; a profile
    change moves a customer in the stream; Redis's summed amount per segment equals the export's; a cache of
    1,000 decoded customers (of 2,500) is evicted and read back without a difference."""
    rules = _with_region(tmp_path)
    assert system.run("rules", "apply", str(rules)) == 0
    worker = system.start_worker(clock="wall", tick_interval_s="1", state_cache_customers="1000")
    demo = generate(DemoSpec(customers=2500, seed=11, end=datetime.now(UTC) - timedelta(hours=1)), tmp_path / "demo")
    for kind in ("profiles", "transactions"):
        assert system.run("import", kind, str(demo[kind]), "--quiet") == 0
    assert system.run("wait", "--timeout", "180") == 0
    export = tmp_path / "export.csv"

    def business_day() -> str:
        return datetime.now(system.settings.policy().timezone).date().isoformat()

    for _ in range(3):  # an export that spans midnight is taken again: the worker moves to the new day within a tick
        today = business_day()
        assert system.run("export", "--out", str(export)) == 0
        if business_day() == today:
            break
        time.sleep(3)
    streamed = read_csv(export)
    offline = classify_csv(system.run, {"transactions": demo["transactions"], "profiles": demo["profiles"]},
                           today, tmp_path / "offline.csv", rules=rules)
    assert row_differences(streamed, offline) == {}
    assert {row["value"] for row in streamed.values()} >= {"churn_risk", "high_value"}

    # Redis's per-segment totals, in report, are the sums of the export's amount_12m
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in streamed.values():
        for dim in ("value", "region"):
            expected[dim, row[dim]] += Decimal(row["amount_12m"] or "0")
            counts[dim, row[dim]] += 1
    report = ReadModel.of(system.settings).report(system.settings.money_scale)
    assert {(dim, seg): amount for dim, seg, _, amount in report} == dict(expected)
    assert {(dim, seg): count for dim, seg, count, _ in report} == dict(counts)

    # the cache held fewer customers than the worker has
    _counters(system, lambda counters: sum(c.get("evicted", 0) for c in counters.values()) > 0)

    # A profile change alone moves a customer between segments
    mover = next(c for c, row in streamed.items() if row["region"] == "elsewhere")
    with (tmp_path / "moved.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["customer_id", "region"])
        writer.writeheader()
        writer.writerow({"customer_id": mover, "region": "east"})
    assert system.run("import", "profiles", str(tmp_path / "moved.csv"), "--quiet") == 0
    assert system.run("wait", "--timeout", "60") == 0
    view = ReadModel.of(system.settings).customer(mover)
    assert view is not None
    assert view.segments["region"] == "east"
    changes = [SegmentChange.model_validate_json(v)
               for _, v in consume_all(system.settings, Names(system.settings.topic_prefix).segment_changes)]
    moved = [c for c in changes if c.customer_id == mover and c.dimension == "region"]
    assert (moved[-1].from_segment, moved[-1].to_segment) == ("elsewhere", "east")
    assert worker.poll() is None


def test_two_workers_rebalance_live_and_the_leaver_flushes_what_it_gives_up(system, tmp_path):
    """A second worker joins while the first is busy: the first flushes and commits its revoked partitions
    before they move, and the two together equal the offline classification."""
    assert system.run("rules", "apply", str(RETAIL)) == 0
    first = system.start_worker(data_dir=tmp_path / "a", loglevel="info")
    demo = generate(DemoSpec(customers=1500, seed=12), tmp_path / "demo")
    assert system.run("import", "transactions", str(demo["transactions"]), "--quiet") == 0
    second = system.start_worker(data_dir=tmp_path / "b", loglevel="info")
    late = generate(DemoSpec(customers=1500, seed=13, end=datetime(2026, 6, 30, 20, tzinfo=UTC)), tmp_path / "late")
    assert system.run("import", "transactions", str(late["transactions"]), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30T23:00:00+00:00") == 0
    assert system.run("wait", "--timeout", "180") == 0
    key = f"{socket.gethostname()}:{first.pid}"  # the first worker's counters: it gave partitions to the second
    wait_until(lambda: ReadModel.of(system.settings).counters().get(key, {}).get("revoked_partitions", 0), bool, 60,
               "the first worker's partitions revoked (flushed and committed) for the second")

    both = tmp_path / "both.csv"
    with both.open("w", newline="") as out:
        rows = [*csv.DictReader(demo["transactions"].open()), *csv.DictReader(late["transactions"].open())]
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    export = tmp_path / "export.csv"
    assert system.run("export", "--out", str(export)) == 0
    offline = classify_csv(system.run, {"transactions": both}, "2026-06-30", tmp_path / "offline.csv")
    assert row_differences(read_csv(export), offline) == {}
    _counters(system, lambda counters: len([c for c in counters.values() if c.get("applied", 0)]) == 2)
    assert first.poll() is None
    assert second.poll() is None


def test_the_action_worker_dead_letters_bad_changes_and_grants_nothing_for_an_unknown_ruleset(system):
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker()
    system.start_actions(actions_replay_horizon="0d")
    settings, names = system.settings, Names(system.settings.topic_prefix)
    now = datetime.now(UTC)
    unknown = SegmentChange.model_validate_json(change_doc(1, "U1", "mid_value", "high_value", now)).model_copy(
        update={"ruleset_id": "nobody-knows"}).model_dump_json(by_alias=True).encode()
    docs = [(names.segment_changes, b"G1", b"\xff{ not a change", 0),
            (names.segment_changes, b"U1", unknown, 0),
            (names.segment_changes, b"K1", change_doc(2, "K1", "mid_value", "high_value", now), 0)]
    asyncio.run(produce_records(settings, docs))
    assert system.run("wait", "--actions", "--timeout", "120") == 0

    alerts = [Alert.model_validate_json(v) for _, v in consume_all(settings, names.alerts)]
    assert [a.customer_id for a in alerts] == ["K1"]  # the partition went on past both
    letters = [DeadLetter.model_validate_json(v) for _, v in consume_all(settings, names.dead_letters)]
    assert [(d.source_topic, d.partition, base64.b64decode(d.value_b64)) for d in letters] == [
        (names.segment_changes, 0, b"\xff{ not a change")]
    stats = wait_until(lambda: orjson.loads((Path(settings.data_dir) / "actions.ready").read_text())["stats"],
                       lambda found: "rules_unknown" in found, 30, "the unknown ruleset counted (refreshed each 0.5 s)")
    assert stats["rules_unknown"] == 1  # the change of a ruleset nobody applied: no actions, counted


def test_a_batch_of_alerts_is_routed_as_one_at_a_time_would_route_it(stack):
    """``assign_many`` (the action worker's batches) against ``assign`` called in turn, from the same Redis state:
    least loaded and round robin (a customer that keeps its manager takes no turn), a customer Redis already holds, a
    customer twice in one batch."""
    least = RosterSpec("senior", "region", "least_loaded", {"east": ("a", "b", "c")}, ("z",))
    turns = RosterSpec("desk", "region", "round_robin", {"east": ("d", "e")}, ("z",))
    asks = [(least, ("a", "b", "c"), "east", f"C{i}", None) for i in range(5)]
    asks += [(least, ("a", "b", "c"), "east", "C1", None), (least, ("a", "b", "c"), "east", "H", None),
             (turns, ("d", "e"), "east", "C0", None), (turns, ("d", "e"), "east", "C5", "e"),  # C5 keeps e: no turn
             (turns, ("d", "e"), "east", "C9", None),
             (least, ("z",), "", "D0", None)]

    async def scenario(batch: bool) -> list[str]:
        store = ActionStore(f"redis://127.0.0.1:{stack.redis_port}/15", f"am{uuid.uuid4().hex[:8]}", 3600)
        try:
            await store.client.sadd(f"{store.prefix}:mgr:senior:a", "X1", "X2")  # a is loaded
            await store.client.sadd(f"{store.prefix}:mgr:senior:c", "H")  # H is c's already
            if batch:
                return await store.assign_many(asks)
            return [await store.assign(*ask) for ask in asks]
        finally:
            await store.close()

    one_at_a_time = asyncio.run(scenario(False))
    assert asyncio.run(scenario(True)) == one_at_a_time
    assert one_at_a_time[6] == "c"  # held by c in Redis
    assert one_at_a_time[5] == one_at_a_time[1]  # C1 again: its manager kept


def test_round_robin_routing_takes_turns_per_team_and_keeps_a_customer_s_manager(stack):
    roster = RosterSpec("desk", "region", "round_robin", {"east": ("a", "b", "c")}, ("z",))
    store = ActionStore(f"redis://127.0.0.1:{stack.redis_port}/15", f"rr{uuid.uuid4().hex[:8]}", 3600)

    async def scenario() -> tuple[list[str], str, str, str]:
        try:
            turns = [await store.assign(roster, ("a", "b", "c"), "east", f"C{i}", None) for i in range(5)]
            kept = await store.assign(roster, ("a", "b", "c"), "east", "C0", "a")
            # a grant that crashed before its ledger write: Redis already holds C1 for b
            held = await store.assign(roster, ("a", "b", "c"), "east", "C1", None)
            other_team = await store.assign(roster, ("z",), "", "D0", None)
            return turns, kept, held, other_team
        finally:
            await store.close()

    turns, kept, held, other_team = asyncio.run(scenario())
    assert turns == ["a", "b", "c", "a", "b"]
    assert (kept, held, other_team) == ("a", "b", "z")


def test_a_batch_of_outcomes_is_recorded_once_each_across_script_calls_and_counted_once(stack):
    """record_many sends RECORDED_PER_CALL outcomes a script call: a batch past that, an outcome recorded before,
    and one listed twice in the batch are each recorded and counted once, and indexed under their customer."""
    store = ActionStore(f"redis://127.0.0.1:{stack.redis_port}/15", f"rm{uuid.uuid4().hex[:8]}", 3600)
    n = RECORDED_PER_CALL + 7
    distinct = [(f"coupon:ch{i}", "value.churn_risk", "coupon", "issued", b'{"i": %d}' % i, f"C{i % 10}")
                for i in range(n)]
    batch = [*distinct[:500], distinct[1], *distinct[500:]]  # ch1 listed twice in the first call

    async def scenario() -> tuple[bool, list[bool], list[bool], dict[bytes, bytes], set[bytes], bytes | None]:
        try:
            before = await store.record(*distinct[3][:5], customer=distinct[3][5])
            recorded = await store.record_many(batch)
            again = await store.record_many([distinct[5], distinct[5],
                                             (*distinct[n - 1][:3], "cooldown", b"{}", "C9")])
            counts = await store.client.hgetall(f"{store.prefix}:action-counts")
            index = await store.client.smembers(f"{store.prefix}:cust-actions:C3")
            document = await store.client.get(f"{store.prefix}:action:coupon:ch{RECORDED_PER_CALL + 1}")
            return before, recorded, again, counts, index, document
        finally:
            await store.close()

    before, recorded, again, counts, index, document = asyncio.run(scenario())
    assert before is True
    assert recorded == [k not in (3, 500) for k in range(n + 1)]  # ch3 recorded before, ch1's second listing
    assert again == [False, False, False]  # the same key: recorded already, whatever its outcome
    assert counts == {b"value.churn_risk|coupon|issued": str(n).encode()}
    assert index == {f"{store.prefix}:action:coupon:ch{i}".encode() for i in range(3, n, 10)}
    assert document == b'{"i": %d}' % (RECORDED_PER_CALL + 1)
