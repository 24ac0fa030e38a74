"""Actions against the real broker and Redis: one grant per transition through crashes and replays."""

from __future__ import annotations

import asyncio
import csv
import re
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.outputs import ActionSuppressed, Alert, Coupon, SegmentChange
from streams.kafka.lag import group_lag
from streams.kafka.topics import produce_records
from streams.names import Names
from streams.stack.embedded import free_port, start_redis, stop
from tests.integration.helpers import RETAIL, change_doc, consume_all, ready_counters, wait_until

pytestmark = pytest.mark.integration

D0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
REGIONS = ("north", "east", "south", "west")
TEAMS = {"north": {"li.wei", "zhao.lei"}, "east": {"wang.fang", "chen.jing"}, "south": {"liu.yang"},
         "west": {"sun.li"}}  # west has no team: the default


def write_population(root: Path, high: int = 24, churn: int = 40, late: int = 24) -> dict[str, Path]:
    """``high`` customers become high value (12 purchases of 1,500 in January), ``churn`` buy twice in
    January, and ``late`` buy in August: that moves every partition's stream time past six months, so
    the January buyers enter churn risk with no event of theirs."""
    root.mkdir(parents=True, exist_ok=True)
    tx, profiles = root / "transactions.csv", root / "profiles.csv"
    with tx.open("w", newline="") as t, profiles.open("w", newline="") as p:
        tw, pw = csv.writer(t), csv.writer(p)
        tw.writerow(["event_id", "customer_id", "occurred_at", "amount"])
        pw.writerow(["customer_id", "type", "industry", "region", "size"])
        for i in range(high):
            cid = f"H{i:03d}"
            pw.writerow([cid, "enterprise", "retail", REGIONS[i % 4], "large"])
            for k in range(12):
                tw.writerow([f"{cid}-{k}", cid, (D0 + timedelta(days=k, minutes=i)).isoformat(), "1500.00"])
        for i in range(churn):
            cid = f"C{i:03d}"
            for k in range(2):
                tw.writerow([f"{cid}-{k}", cid, (D0 + timedelta(days=5 + k, minutes=i)).isoformat(), "100.00"])
        for i in range(late):
            cid = f"L{i:03d}"
            tw.writerow([f"{cid}-0", cid, (D0 + timedelta(days=215, minutes=i)).isoformat(), "50.00"])
    return {"profiles": profiles, "transactions": tx}


def load(system, root: Path) -> None:
    paths = write_population(root)
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "profiles", str(paths["profiles"]), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0  # topics are not ordered among each other
    assert system.run("import", "transactions", str(paths["transactions"]), "--quiet") == 0


def expected_grants(settings) -> tuple[set[str], set[str]]:
    """change_ids entering churn_risk (a coupon each) and high_value (an alert each), from the topic."""
    coupons, alerts = set(), set()
    for _, value in consume_all(settings, Names(settings.topic_prefix).segment_changes):
        change = SegmentChange.model_validate_json(value)
        if change.dimension == "value" and change.from_segment != change.to_segment:
            if change.to_segment == "churn_risk":
                coupons.add(change.change_id)
            elif change.to_segment == "high_value":
                alerts.add(change.change_id)
    return coupons, alerts


def granted(settings) -> tuple[list[Coupon], list[Alert]]:
    names = Names(settings.topic_prefix)
    coupons = [Coupon.model_validate_json(v) for _, v in consume_all(settings, names.coupons)]
    alerts = [Alert.model_validate_json(v) for _, v in consume_all(settings, names.alerts)]
    return coupons, alerts


def assert_exactly_once(settings) -> tuple[list[Coupon], list[Alert]]:
    want_coupons, want_alerts = expected_grants(settings)
    coupons, alerts = granted(settings)
    assert len(want_coupons) >= 40, "the population must produce churn-risk entries"
    assert len(want_alerts) >= 20, "the population must produce high-value entries"
    twice = [k for k, n in Counter(c.coupon_id for c in coupons).items() if n > 1]
    assert not twice, f"{len(twice)} coupons issued twice"
    assert not [k for k, n in Counter(a.alert_id for a in alerts).items() if n > 1], "alerts issued twice"
    assert {c.change_id for c in coupons} == want_coupons
    assert {a.change_id for a in alerts} == want_alerts
    return coupons, alerts


def wait_actions(system) -> None:
    assert system.run("wait", "--actions", "--timeout", "180") == 0


def test_every_transition_yields_exactly_one_coupon_or_alert(system, tmp_path):
    system.start_worker()
    system.start_actions(actions_replay_horizon="0d")
    load(system, tmp_path / "data")
    wait_actions(system)
    coupons, alerts = assert_exactly_once(system.settings)
    assert {c.action for c in coupons} == {"winback_coupon"}
    assert all(c.code.startswith("WINBACK15-") and c.percent == 15 for c in coupons)
    for alert in alerts:  # routed by region; the same team member keeps the customer
        region = REGIONS[int(alert.customer_id[1:]) % 4]
        assert alert.manager in TEAMS.get(region, {"sun.li"}), (alert.customer_id, region, alert.manager)
    managers = Counter(a.manager for a in alerts if a.team == "north")
    assert set(managers) == {"li.wei", "zhao.lei"}, "least loaded spreads a team's customers"
    # The report counts what was issued, per segment and action.
    client = redis.Redis.from_url(system.settings.redis_url)
    key = f"{Names(system.settings.topic_prefix).redis}:action-counts"
    counts = {k.decode(): int(v) for k, v in client.hgetall(key).items()}
    assert counts["value.churn_risk|winback_coupon|issued"] == len(coupons)
    assert counts["value.high_value|senior_manager|issued"] == len(alerts)
    for ready in ("worker.ready", "actions.ready"):  # both collect garbage on their own schedule (collector.py)
        assert orjson.loads((Path(system.settings.data_dir) / ready).read_text())["gc_automatic"] is False, ready


def reset_group_to_zero(settings) -> None:
    """What an operator does to replay: the action group's committed offsets back to 0."""
    names = Names(settings.topic_prefix)

    async def reset() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=names.actions_app_id,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in (names.segment_changes, names.control)
                   for p in range(settings.partitions)]
            consumer.assign(tps)
            await consumer.commit(dict.fromkeys(tps, 0))
        finally:
            await consumer.stop()

    asyncio.run(reset())


def test_sigkill_between_grant_and_ledger_then_a_replay_from_zero_issue_nothing_twice(system, tmp_path):
    system.start_worker()
    load(system, tmp_path / "data")
    assert system.run("wait", "--timeout", "120") == 0
    # Die right after a grant is acknowledged and before the ledger records it.
    for point in ("after-grant:7",):
        doomed = system.start_actions(actions_replay_horizon="0d", failpoint=point, wait=False)
        assert doomed.wait(timeout=180) == -signal.SIGKILL
    actions = system.start_actions(actions_replay_horizon="0d")
    wait_actions(system)
    coupons, alerts = assert_exactly_once(system.settings)
    stats = wait_until(lambda: orjson.loads((Path(system.settings.data_dir) / "actions.ready").read_text())["stats"],
                       lambda found: "reconciled" in found, 30, "the action worker's counters (refreshed each 0.5 s)")
    assert stats["reconciled"] >= 1  # the grant acknowledged before the kill, found on its topic and recorded

    # Replay the whole segment-changes topic from offset 0, and re-emit every change as a copy.
    system.kill_worker(actions, signal.SIGTERM)
    reset_group_to_zero(system.settings)
    names = Names(system.settings.topic_prefix)
    changes = consume_all(system.settings, names.segment_changes)
    asyncio.run(produce_records(system.settings, [(names.segment_changes, k, v, None) for k, v in changes]))
    system.start_actions(actions_replay_horizon="0d")
    wait_actions(system)
    again_coupons, again_alerts = granted(system.settings)
    assert (len(again_coupons), len(again_alerts)) == (len(coupons), len(alerts))
    stats = orjson.loads((Path(system.settings.data_dir) / "actions.ready").read_text())["stats"]
    assert stats["replayed"] > 0
    assert stats["duplicates"] > 0


def test_cooldown_and_min_dwell_at_their_boundaries(system, tmp_path):
    rules = tmp_path / "dwell.yaml"
    rules.write_text(RETAIL.read_text().replace("    cooldown: 90d\n", "    cooldown: 90d\n    min_dwell: 2d\n"))
    assert system.run("rules", "apply", str(rules)) == 0
    system.start_worker()  # `wait` waits for both groups; this one only sees the control records
    system.start_actions(actions_replay_horizon="0d")
    settings, names = system.settings, Names(system.settings.topic_prefix)
    day, sec = timedelta(days=1), timedelta(seconds=1)

    def send(*records: tuple[str, str | None, str, datetime]) -> None:
        docs = [(names.segment_changes, c.encode(), change_doc(f"{c}/{b}/{a}/{t.isoformat()}", c, b, a, t), 0)
                for c, b, a, t in records]
        asyncio.run(produce_records(settings, docs))

    def tick(at: datetime) -> None:
        doc = orjson.dumps({"type": "tick", "to": at.isoformat()})
        asyncio.run(produce_records(settings, [(names.control, b"tick", doc, 0)]))

    send(("Y", "mid_value", "high_value", D0), ("Y", "high_value", "mid_value", D0 + 2 * day - sec),
         ("Z", "mid_value", "high_value", D0 + day))
    tick(D0 + 3 * day - sec)
    wait_actions(system)
    assert granted(settings)[1] == []  # Y left a second early; Z's two days are not over
    tick(D0 + 3 * day)
    wait_actions(system)
    alerts = granted(settings)[1]
    assert [(a.customer_id, a.stream_time) for a in alerts] == [("Z", D0 + 3 * day)]

    x0 = D0 + 10 * day
    send(("X", None, "churn_risk", x0), ("X", "churn_risk", "low_value", x0 + day),
         ("X", "low_value", "churn_risk", x0 + 30 * day - sec), ("X", "churn_risk", "low_value", x0 + 30 * day),
         ("X", "low_value", "churn_risk", x0 + 30 * day))
    wait_actions(system)
    coupons = granted(settings)[0]
    assert [c.stream_time for c in coupons] == [x0, x0 + 30 * day]
    audit = [ActionSuppressed.model_validate_json(v) for _, v in consume_all(settings, names.action_audit)]
    assert sorted((a.customer_id, a.reason) for a in audit) == [("X", "cooldown"), ("Y", "dwell")]
    assert system.run("report") == 0


def test_redis_away_holds_the_actions_back_and_loses_or_doubles_nothing(system, tmp_path):
    port = free_port()
    own_redis = start_redis(port, tmp_path / "redis-a")
    system.start_worker()
    system.start_actions(actions_replay_horizon="0d", redis_url=f"redis://127.0.0.1:{port}/0")
    stop(own_redis.pid)  # Redis dies with everything it held (no AOF survives: a new, empty one comes back)
    load(system, tmp_path / "data")
    assert system.run("wait", "--timeout", "120") == 0
    # The action worker has fetched changes and is held by Redis (not merely idle before its first fetch) ...
    wait_until(lambda: ready_counters(Path(system.settings.data_dir) / "actions.ready").get("redis_retries", 0),
               bool, 90, "the action worker retrying Redis")
    behind = sum(lag.lag for lag in asyncio.run(group_lag(system.settings))
                 if lag.group == Names(system.settings.topic_prefix).actions_app_id)
    assert behind > 0, "while Redis is away the action group must fall behind, visibly"  # ... and lags
    own_redis = start_redis(port, tmp_path / "redis-b")
    try:
        wait_actions(system)
        assert_exactly_once(system.settings)
    finally:
        stop(own_redis.pid)


def test_two_action_workers_split_the_work_and_one_dying_mid_stream_doubles_nothing(system, tmp_path):
    system.start_worker()
    doomed = system.start_actions(data_dir=tmp_path / "a", actions_replay_horizon="0d", failpoint="after-grant:15")
    system.start_actions(data_dir=tmp_path / "b", actions_replay_horizon="0d")
    load(system, tmp_path / "data")  # both are in the group: each owns half of the partitions
    assert doomed.wait(timeout=180) == -signal.SIGKILL, "the doomed worker must reach its 15th grant"
    wait_actions(system)  # its partitions move to the survivor after the session timeout
    assert_exactly_once(system.settings)
    survivor_log = (tmp_path / "b" / "actions.log").read_text()
    taken = {int(p) for p in re.findall(r"partition (\d+) taken", survivor_log)}
    assert taken == set(range(system.settings.partitions)), "the survivor must have taken the dead worker's partitions"


def test_changes_that_wait_past_the_horizon_while_the_action_worker_is_down_are_still_granted(system, tmp_path):
    """The horizon is measured from when a change was emitted, not from when it is read: live transitions
    that waited in the topic longer than the horizon get their grants once; history still gets none."""
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker()
    actions = system.start_actions(actions_replay_horizon="5s")
    system.kill_worker(actions)  # the action worker is down while changes arrive
    settings, names = system.settings, Names(system.settings.topic_prefix)
    history = datetime.now(UTC) - timedelta(days=400)
    backfill = [(f"B{i:02d}", None, "high_value", history) for i in range(6)]
    now = datetime.now(UTC)
    live = ([(f"H{i:02d}", "mid_value", "high_value", now) for i in range(8)]
            + [(f"R{i:02d}", "low_value", "churn_risk", now) for i in range(8)])
    docs = [(names.segment_changes, c.encode(), change_doc(n, c, b, a, t), None)
            for n, (c, b, a, t) in enumerate(backfill + live)]
    asyncio.run(produce_records(settings, docs))
    emitted = time.monotonic()
    # The changes wait in the topic past the horizon (5 s) and the dead member's session
    time.sleep(max(0.0, emitted + max(5.0, float(settings.session_timeout_s)) + 1 - time.monotonic()))
    system.start_actions(actions_replay_horizon="5s")
    wait_actions(system)
    coupons, alerts = granted(settings)
    assert sorted(a.customer_id for a in alerts) == [f"H{i:02d}" for i in range(8)]
    assert sorted(c.customer_id for c in coupons) == [f"R{i:02d}" for i in range(8)]
    audits = [ActionSuppressed.model_validate_json(v) for _, v in consume_all(settings, names.action_audit)]
    assert sorted(s.customer_id for s in audits if s.reason == "replay") == [f"B{i:02d}" for i in range(6)]


TWO_ON_ONE = RETAIL.read_text().replace(
    "  - id: senior_manager           # 高价值客户 → 资深客户经理\n    enter: value.high_value",
    "  - id: winback_call\n    enter: value.churn_risk\n    alert: {priority: high, message: \"call {customer_id}\"}\n"
    "  - id: senior_manager           # 高价值客户 → 资深客户经理\n    enter: value.high_value", 1)


def test_a_kill_between_two_grants_of_one_change_loses_neither(system, tmp_path):
    rules = tmp_path / "two-on-one.yaml"
    rules.write_text(TWO_ON_ONE)
    paths = write_population(tmp_path / "data", high=0, churn=12, late=8)
    assert system.run("rules", "apply", str(rules)) == 0
    system.start_worker()
    assert system.run("import", "transactions", str(paths["transactions"]), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    # Die after a change's coupon is acknowledged and before its call alert is sent
    doomed = system.start_actions(actions_replay_horizon="0d", failpoint="between-grants:2", wait=False)
    assert doomed.wait(timeout=180) == -signal.SIGKILL
    system.start_actions(actions_replay_horizon="0d")
    wait_actions(system)
    want, _ = expected_grants(system.settings)
    assert len(want) >= 4  # the partitions whose stream time the late buyers moved past six months
    coupons, alerts = granted(system.settings)
    assert sorted(c.change_id for c in coupons) == sorted(want)
    calls = [a.change_id for a in alerts if a.action == "winback_call"]
    assert sorted(calls) == sorted(want)  # each once: none lost at the kill, none doubled after it
