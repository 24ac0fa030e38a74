"""The HTTP API under load: ``GET /customers/{id}``, a members page with N customers in Redis, and the movement a
page view reads (``GET /movement?since=365d`` and the dashboard ``GET /``) after 10,000,000 segment changes.

A Redis read model of N customers is written the way the workers' flush writes it (each customer's stored
record, segments, membership sets, the partitions' clocks), the retail ruleset is applied on an embedded broker
(the API explains each customer with it), ``segmenter api`` is started as its own process, and a load generator
(aiohttp, ``--concurrency`` connections kept alive) asks for random customers, then for members pages, for
``--seconds`` each. Both share this machine's cores with Redis and the broker. Printed: requests per second and
latency percentiles. The movement is read from the day summaries the workers keep in Redis, never from the
segment-changes topic: the bench writes the summaries that ``--changes`` changes over 400 business days leave
(what the topic holds does not enter a page view, so it is not filled).

Run: ``python -m bench.api`` (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

import aiohttp
import orjson
import redis

from segmenter import step
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, PURCHASE, Fact, WindowState, apply, hash_event_id, totals_at
from streams.kafka.control import apply_rules
from streams.kafka.topics import create_topics
from streams.names import Names
from streams.settings import Settings
from streams.stack.embedded import free_port, port_open, start_broker, start_redis, stop
from streams.stored import pack

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "rules" / "retail-value.yaml"
PARTITIONS = 8
DAY = 740_000


def fill(client: redis.Redis, prefix: str, customers: int) -> None:
    """N customers, 1 to 12 purchases each in the last year, classified under the retail rules."""
    policy, ruleset, rng = Policy(), load_ruleset(RULES.read_text()), random.Random(3)
    pipe = client.pipeline(transaction=False)
    for c in range(customers):
        customer, state = f"C{c:07d}", EMPTY
        for k in range(rng.randint(1, 12)):
            fact = Fact(DAY - rng.randrange(365), PURCHASE, rng.randrange(1000, 400_000), hash_event_id(f"{c}-{k}"))
            state, _ = apply(state, fact, DAY, policy)
        segments = dict(ruleset.pairs(ruleset.classify_totals(*_totals(state, policy), state.first_purchase,
                                                              state.last_purchase, DAY, {})))
        record = step.CustomerRecord(state, {}, tuple(segments.items()), ruleset.key, None, 1)
        partition = c % PARTITIONS
        pipe.hset(f"{prefix}:c:{customer}", mapping={"partition": partition, "state": pack(partition, record),
                                                     "segments": orjson.dumps(segments), "epoch": 1, "seq": 1})
        pipe.sadd(f"{prefix}:customers", customer)
        for dim, seg in segments.items():
            pipe.sadd(f"{prefix}:m:{dim}:{seg}", customer)
        if c % 5000 == 4999:
            pipe.execute()
    noon = datetime.combine(date.fromordinal(DAY), dtime(12), policy.timezone).isoformat()
    pipe.hset(f"{prefix}:clock", mapping={str(p): orjson.dumps([noon, DAY]) for p in range(PARTITIONS)})
    pipe.execute()


def fill_moves(client: redis.Redis, prefix: str, changes: int, days: int = 400) -> None:
    """The day summaries ``changes`` segment changes over ``days`` business days leave (4 dimensions, 16 moves each)."""
    rng, segments = random.Random(4), ["high_value", "mid_value", "low_value", "churn_risk", "(none)"]
    pipe = client.pipeline(transaction=False)
    per_day = changes // days
    for day in range(DAY - days + 1, DAY + 1):
        fields: dict[str, int] = {}
        for _ in range(64):
            dim = f"dim{rng.randrange(4)}"
            before, after = rng.sample(segments, 2)
            fields[f"{dim}\x1f{before}\x1f{after}"] = 0
        for name in fields:
            fields[name] = per_day // len(fields)
        pipe.hset(f"{prefix}:mv:{day}", mapping={**fields, **{f"{k}\x1fa": v * 150_000 for k, v in fields.items()}})
    pipe.execute()


def _totals(state: WindowState, policy: Policy) -> tuple[tuple[int, ...], tuple[int, ...]]:
    t = totals_at(state, DAY, policy)
    return t.long, t.short


async def load(base: str, paths: list[str], seconds: float, concurrency: int) -> tuple[int, list[float], int]:
    """GET random ``paths`` over ``concurrency`` kept-alive connections for ``seconds``: (requests, latencies in
    ms, errors)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(5)

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            async with session.get(base + rng.choice(paths)) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(1000 * (time.perf_counter() - t0))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
    return len(latencies), latencies, errors


def report(what: str, done: int, latencies: list[float], errors: int, seconds: float) -> None:
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(f"{what:<44} {done / seconds:>8,.0f} req/s  p50 {pct(0.5):6.1f} ms  p99 {pct(0.99):6.1f} ms"
          f"  ({done:,} requests, {errors} not 200)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=8, help="connections (past saturation, more only queue)")
    parser.add_argument("--changes", type=int, default=10_000_000, help="segment changes the movement summarises")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        broker_port, redis_port, api_port = free_port(), free_port(), free_port()
        broker = start_broker(broker_port, Path(root) / "logs")
        server = start_redis(redis_port, Path(root) / "redis")
        api = None
        try:
            settings = Settings(redis_url=f"redis://127.0.0.1:{redis_port}/0", topic_prefix="bench.",
                                kafka_bootstrap=f"127.0.0.1:{broker_port}", api_port=api_port)
            asyncio.run(create_topics(settings))
            asyncio.run(apply_rules(settings, load_ruleset(RULES.read_text(), "retail-value.yaml"), "bench"))
            t0 = time.monotonic()
            fill(redis.Redis.from_url(settings.redis_url), Names(settings.topic_prefix).redis, args.customers)
            print(f"bench api: {args.customers:,} customers in Redis (written in {time.monotonic() - t0:.0f}s); "
                  f"{args.concurrency} connections, {args.seconds:.0f}s a run, {os.cpu_count()} cores shared with "
                  "Redis, the broker and the load generator")
            env = {**os.environ, "SEGMENTER_REDIS_URL": settings.redis_url, "SEGMENTER_TOPIC_PREFIX": "bench.",
                   "SEGMENTER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "SEGMENTER_API_PORT": str(api_port)}
            api = subprocess.Popen([sys.executable, "-m", "streams.cli", "api"], env=env)
            while not port_open("127.0.0.1", api_port):
                time.sleep(0.1)
            base = f"http://127.0.0.1:{api_port}"
            rng = random.Random(9)
            customers = [f"/customers/C{rng.randrange(args.customers):07d}" for _ in range(20_000)]
            asyncio.run(load(base, customers[:200], 2, 4))  # warm up: rulesets read, connections open
            done, latencies, errors = asyncio.run(load(base, customers, args.seconds, args.concurrency))
            report("GET /customers/{id}", done, latencies, errors, args.seconds)
            pages = ["/segments/value/low_value/members?limit=100", "/segments/value/high_value/members?limit=100"]
            done, latencies, errors = asyncio.run(load(base, pages, args.seconds, args.concurrency))
            report("GET /segments/{d}/{s}/members?limit=100", done, latencies, errors, args.seconds)
            fill_moves(redis.Redis.from_url(settings.redis_url), Names(settings.topic_prefix).redis, args.changes)
            print(f"movement: the day summaries of {args.changes:,} segment changes over 400 business days")
            done, latencies, errors = asyncio.run(load(base, ["/movement?since=365d"], args.seconds, args.concurrency))
            report("GET /movement?since=365d", done, latencies, errors, args.seconds)
            with urllib.request.urlopen(f"{base}/movement?since=365d") as answer:  # noqa: S310 (our own API)
                moved = sum(m["customers"] for m in orjson.loads(answer.read())["moves"])
            print(f"  (it sums {moved:,} moves of the last 365 days)")
            done, latencies, errors = asyncio.run(load(base, ["/"], args.seconds, args.concurrency))
            report("GET / (the dashboard: segments, 7 days' movement, lag)", done, latencies, errors, args.seconds)
        finally:
            if api is not None:
                api.terminate()
                api.wait(timeout=30)
            stop(server.pid)
            stop(broker.pid)


if __name__ == "__main__":
    main()
