"""Money at its bounds against the real Redis: whatever amount the edge accepts sums, stores, projects and
reads back exactly; a row Redis refuses for good is quarantined and the rest of the flush written."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmenter import step
from segmenter.rules import load_ruleset
from segmenter.state import totals_at
from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.readmodel.writer import ProjectedCustomer, Projection
from streams.settings import Settings
from streams.stored import pack
from streams.worker.edge import BAD_INPUT, Edge
from tests.integration.helpers import RETAIL

pytestmark = pytest.mark.integration

D0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


class Raw(NamedTuple):
    key: bytes
    value: bytes
    offset: int


def url(stack: Any) -> str:
    return f"redis://127.0.0.1:{stack.redis_port}/15"


amounts = st.one_of(
    st.decimals(min_value=0, max_value=Decimal(10) ** 13, places=2),
    st.integers(0, 10**13),
    st.sampled_from([Decimal(10) ** 12, Decimal("999999999999.99"), Decimal("1000000000000.01"), Decimal("1e400"),
                     Decimal("0.01"), Decimal(0)]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(amounts, st.booleans()), min_size=1, max_size=80))
def test_any_amount_the_edge_accepts_sums_projects_and_reads_back(stack, events):
    config = Settings(redis_url=url(stack), topic_prefix=f"b{uuid.uuid4().hex[:8]}.")
    names, policy = Names(config.topic_prefix), config.policy()
    edge = Edge(config, names, policy)
    ruleset = load_ruleset(RETAIL.read_text(), "retail", policy.money_scale)
    record, total, day = step.CustomerRecord(), 0, policy.calendar.day(D0)
    for n, (amount, refund) in enumerate(events):
        doc = {"event_id": f"e{n}", "customer_id": "C1", "order_id": f"o{n}",
               "kind": "refund" if refund else "purchase", "occurred_at": (D0 + timedelta(minutes=n)).isoformat(),
               "amount": amount if isinstance(amount, int) else str(amount)}
        try:
            _, (_, event_id, _, fact) = edge.transaction(Raw(b"C1", orjson.dumps(doc), n))
        except BAD_INPUT:
            assert Decimal(amount) > config.max_amount, f"refused an amount within the bounds: {amount}"
            continue
        assert Decimal(amount) <= config.max_amount
        record, _, _ = step.on_fact(record, fact, event_id=event_id, now_day=day, ruleset=ruleset, policy=policy)
        total += -fact.amount if refund else fact.amount
    amount_12m = totals_at(record.state, day, policy).long[1]
    assert amount_12m == total
    row = ProjectedCustomer("C1", 1, record.seq + 1, dict(record.segments), amount_12m, 0, pack(0, record))

    async def write() -> Any:
        projection = Projection(config.redis_url, names.redis)
        try:
            return await projection.write_many([row], {0: (D0.isoformat(), day)})
        finally:
            await projection.close()

    written = asyncio.run(write())
    assert (written.applied, written.quarantined) == (1, [])
    model = ReadModel.of(config)
    view = model.customer("C1")
    assert view is not None
    if total or record.segments:
        assert Decimal(view.doc["metrics"]["amount_12m"] or 0) == policy.from_minor(total)
    report = {(dim, seg): amount for dim, seg, _, amount in model.report(policy.money_scale)}
    for dim, seg in record.segments:
        assert report[dim, seg] == policy.from_minor(total)


def test_a_row_redis_refuses_is_quarantined_whole_and_the_rest_written(stack):
    prefix = f"q{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url(stack))
    near_max = 2**63 - 10
    client.hset(f"{prefix}:amt:value", "high_value", str(near_max))  # the next customer in there overflows it

    def row(customer: str, seq: int, segments: dict[str, str], amount: int) -> ProjectedCustomer:
        return ProjectedCustomer(customer, 1, seq, segments, amount, 0, pack(0, step.CustomerRecord()))

    async def write(rows: list[ProjectedCustomer]) -> Any:
        projection = Projection(url(stack), prefix)
        try:
            return await projection.write_many(rows), await projection.quarantined()
        finally:
            await projection.close()

    rows = [row("A", 1, {"tier": "gold", "value": "low_value"}, 500),
            row("B", 1, {"tier": "gold", "value": "high_value"}, 100),  # both sums move; the second overflows
            row("C", 1, {"tier": "gold", "value": "mid_value"}, 700)]
    written, quarantined = asyncio.run(write(rows))
    assert [c.customer_id for c, _ in written.quarantined] == ["B"]
    assert written.quarantined[0][1] == "ERR increment or decrement would overflow"
    assert quarantined == {"B"}
    shown = ReadModel(url(stack), prefix, Settings().policy()).quarantined()  # what `segmenter report` lists
    assert set(shown) == {"B"}
    assert (shown["B"]["error"], shown["B"]["seq"]) == ("ERR increment or decrement would overflow", 1)
    # B moved nothing: not the overflowing sum, not the other dimension's sum, no membership, no hash
    assert int(client.hget(f"{prefix}:amt:value", "high_value")) == near_max
    assert int(client.hget(f"{prefix}:amt:tier", "gold")) == 1200
    assert client.smembers(f"{prefix}:m:tier:gold") == {b"A", b"C"}
    assert not client.exists(f"{prefix}:c:B")
    assert client.smembers(f"{prefix}:customers") == {b"A", b"C"}

    # Once the sum is repaired, B's next write goes through and it leaves the quarantine.
    client.hset(f"{prefix}:amt:value", "high_value", "0")

    async def again() -> set[str]:
        projection = Projection(url(stack), prefix)
        try:
            done = await projection.write_many([row("B", 2, {"tier": "gold", "value": "high_value"}, 100)])
            assert (done.applied, done.quarantined) == (1, [])
            await projection.release(["B"])
            return await projection.quarantined()
        finally:
            await projection.close()

    assert asyncio.run(again()) == set()
    assert int(client.hget(f"{prefix}:amt:tier", "gold")) == 1300
    assert int(client.hget(f"{prefix}:amt:value", "high_value")) == 100


def test_tag_sets_follow_each_write_and_the_story_list_is_capped_and_never_repeats_a_change(stack):
    prefix = f"h{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url(stack))

    def row(epoch: int, seq: int, tags: tuple[str, ...], history: list[str]) -> ProjectedCustomer:
        entries = tuple(
            (cid, orjson.dumps({"at": "t", "tag": cid, "added": True, "cause": "manual", "why": "w"}).decode())
            for cid in history)
        return ProjectedCustomer("A", epoch, seq, {"value": "low"}, 0, 0, pack(0, step.CustomerRecord()), tags,
                                 entries)

    async def write(*rows: ProjectedCustomer) -> None:
        projection = Projection(url(stack), prefix, keep=3)
        try:
            for r in rows:
                await projection.write_many([r])
        finally:
            await projection.close()

    asyncio.run(write(row(1, 1, ("vip", "行业:制造业"), ["c1", "c2"]),
                      row(1, 2, ("vip",), ["c3"]),
                      row(2, 1, ("vip",), ["c2", "c3"])))  # a replay by the next owner: the same changes again
    assert client.smembers(f"{prefix}:t:vip") == {b"A"}
    assert not client.exists(f"{prefix}:t:行业:制造业")
    reader = ReadModel(url(stack), prefix, Settings().policy())
    assert [c["change_id"] for c in reader.recent_changes("A")] == ["c3", "c2", "c1"]
    asyncio.run(write(row(2, 2, (), ["c4", "c5"])))
    assert [c["change_id"] for c in reader.recent_changes("A")] == ["c5", "c4", "c3"]  # capped at 3, newest first
    assert not client.exists(f"{prefix}:t:vip")
    assert reader.tag_counts() == {}


def test_redis_out_of_memory_for_a_while_holds_a_flush_back_then_takes_it_whole(stack, caplog):
    """A refusal that goes away by itself (here out of memory, met inside the projection's script and by a plain
    command of the same round trip) holds the flush back and is retried; nothing is quarantined."""
    prefix = f"o{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url(stack))
    limit = client.config_get("maxmemory")["maxmemory"]
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    rows = [ProjectedCustomer(c, 1, 1, {"value": "low_value"}, 500, 0, pack(0, step.CustomerRecord())) for c in "ABC"]

    async def write() -> tuple[bool, Any]:
        projection = Projection(url(stack), prefix)
        try:
            flush = asyncio.create_task(projection.write_many(rows, {0: (D0.isoformat(), 1)}, [0]))
            await asyncio.sleep(1.0)
            held = not flush.done()
            client.config_set("maxmemory", limit)
            return held, await flush
        finally:
            await projection.close()

    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        with caplog.at_level(logging.WARNING, "segmenter.redis"):
            held, written = asyncio.run(write())
    finally:
        client.config_set("maxmemory", limit)
        client.config_set("maxmemory-policy", policy)
    assert held
    assert (written.applied, written.quarantined, written.unprojected) == (3, [], [0])
    assert "maxmemory" in caplog.text  # the retries were logged with Redis' reason
    assert client.smembers(f"{prefix}:m:value:low_value") == {b"A", b"B", b"C"}
    assert client.hget(f"{prefix}:clock", "0") is not None


# amounts: small; of 15 digits (a few of them in one call pass 2^52, where the script stops summing one field's
# increments); past 15 characters (sent to Redis as they are)
minor_amounts = st.one_of(st.integers(-500, 10**6), st.integers(9 * 10**14, 10**15 - 1),
                          st.integers(-(10**14) + 1, -9 * 10**13), st.integers(10**15, 10**17))
segment_rows = st.lists(st.tuples(st.sampled_from(["C1", "C2", "C3"]), st.sampled_from(["high", "low"]),
                                  st.sampled_from(["new", "active"]), minor_amounts, st.integers(0, 3)),
                        min_size=1, max_size=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment_rows, st.integers(1, 30))
def test_segment_sums_and_members_follow_each_customers_last_row(stack, rows, per_call):
    """Rows that keep a dimension's segment, move one dimension, or only change the sums, written ``per_call`` in
    one script call (a customer may come twice in one): the per-segment sums, counters and member sets are always
    those of each customer's last row, and the day's movement sums those of every row (the script sums a call's
    increments of one field while that stays exact, and skips what nets to zero)."""
    prefix = f"s{uuid.uuid4().hex[:8]}"
    day = 20_000

    async def write() -> None:
        projection = Projection(url(stack), prefix)
        try:
            written = [ProjectedCustomer(customer, 1, seq, {"value": value, "life": life}, amount, 0, b"state",
                                         moves=((f"m{seq}", day, "value", "x", value, amount),), purchases=purchases)
                       for seq, (customer, value, life, amount, purchases) in enumerate(rows, 1)]
            for start in range(0, len(written), per_call):
                done = await projection.write_many(written[start : start + per_call])
                assert (done.applied, done.quarantined) == (len(written[start : start + per_call]), [])
        finally:
            await projection.close()

    asyncio.run(write())
    last = {customer: (value, life, amount, purchases) for customer, value, life, amount, purchases in rows}
    client = redis.Redis.from_url(url(stack), decode_responses=True)
    moved: dict[str, int] = {}
    for _, value, _, amount, _ in rows:
        moved[f"value\x1fx\x1f{value}"] = moved.get(f"value\x1fx\x1f{value}", 0) + 1
        moved[f"value\x1fx\x1f{value}\x1fa"] = moved.get(f"value\x1fx\x1f{value}\x1fa", 0) + amount
    assert {k: int(v) for k, v in client.hgetall(f"{prefix}:mv:{day}").items()} == moved
    for dim, at in (("value", 0), ("life", 1)):
        amounts: dict[str, int] = {}
        counted: dict[str, int] = {}
        members: dict[str, set[str]] = {}
        for customer, row in last.items():
            seg = row[at]
            amounts[seg] = amounts.get(seg, 0) + row[2]
            counted[f"{seg}\x1fp"] = counted.get(f"{seg}\x1fp", 0) + row[3]
            counted[f"{seg}\x1fr"] = counted.get(f"{seg}\x1fr", 0) + (row[3] >= 2)
            members.setdefault(seg, set()).add(customer)
        assert {k: int(v) for k, v in client.hgetall(f"{prefix}:amt:{dim}").items() if int(v)} == \
            {k: v for k, v in amounts.items() if v}
        assert {k: int(v) for k, v in client.hgetall(f"{prefix}:kpi:{dim}").items() if int(v)} == \
            {k: v for k, v in counted.items() if v}
        for seg in ("high", "low", "new", "active"):
            assert client.smembers(f"{prefix}:m:{dim}:{seg}") == members.get(seg, set())


def test_one_calls_increments_of_a_field_stay_exact_past_two_to_the_53(stack):
    """Forty 15-digit amounts into one segment in one script call sum past 2^53, where a double stops counting
    every integer: the script sends its running sum before that, so the segment's sum and the day's moved amount
    are exact."""
    prefix = f"x{uuid.uuid4().hex[:8]}"
    amounts = [10**15 - 1 - i for i in range(40)]  # odd and even, 15 digits each: 4e16 in all
    rows = [ProjectedCustomer(f"C{i}", 1, 1, {"value": "high"}, amount, 0, b"state", purchases=1,
                              moves=((f"m{i}", 20_000, "value", "low", "high", amount),))
            for i, amount in enumerate(amounts)]

    async def write() -> Any:
        projection = Projection(url(stack), prefix)
        try:
            return await projection.write_many(rows)
        finally:
            await projection.close()

    written = asyncio.run(write())
    assert (written.applied, written.quarantined) == (40, [])
    client = redis.Redis.from_url(url(stack), decode_responses=True)
    assert int(client.hget(f"{prefix}:amt:value", "high")) == sum(amounts)
    assert int(client.hget(f"{prefix}:mv:20000", "value\x1flow\x1fhigh\x1fa")) == sum(amounts)
    assert int(client.hget(f"{prefix}:mv:20000", "value\x1flow\x1fhigh")) == 40
