"""``rules preview`` time: a Redis read model of N customers (what the workers project), then the preview of a
candidate ruleset against all of them, as ``segmenter rules preview`` runs it.

The read model is written here directly (each customer's stored record, as the worker's flush writes it), so
the figure is the preview's own: read every record from Redis, classify it under the candidate, count.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import orjson
import redis

from bench.core import START, make_events
from segmenter import step
from segmenter.classify import classify
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, apply
from streams.cli import preview
from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.stack.embedded import free_port, start_redis, stop
from streams.stored import pack

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "rules" / "retail-value.yaml"
PARTITIONS = 8


def fill(client: redis.Redis, prefix: str, customers: int, events: int) -> int:
    """The read model of ``customers`` customers after ``events`` events; returns the stream day."""
    policy, ruleset = Policy(), load_ruleset(RULES.read_text())
    states: dict[int, object] = {}
    for c, fact in make_events(customers, events):
        states[c], _ = apply(states.get(c, EMPTY), fact, fact.day, policy)  # type: ignore[arg-type]
    day = START + 365
    pipe = client.pipeline(transaction=False)
    for n, (c, state) in enumerate(states.items()):
        customer = f"C{c:07d}"
        record = step.CustomerRecord(state, {}, ruleset.pairs(classify(ruleset, state, day, policy)),  # type: ignore[arg-type]
                                     ruleset.key)
        pipe.hset(f"{prefix}:c:{customer}", mapping={"partition": c % PARTITIONS,
                                                     "state": pack(c % PARTITIONS, record)})
        pipe.sadd(f"{prefix}:customers", customer)
        pipe.sadd(f"{prefix}:p:{c % PARTITIONS}", customer)
        if n % 5000 == 4999:
            pipe.execute()
    pipe.hset(f"{prefix}:clock", mapping={str(p): orjson.dumps(["", day]) for p in range(PARTITIONS)})
    pipe.execute()
    return day


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="preview processes (default: cores)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        server = start_redis(port, Path(root) / "redis")
        try:
            settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", topic_prefix="bench.")
            client = redis.Redis.from_url(settings.redis_url)
            t0 = time.monotonic()
            fill(client, Names(settings.topic_prefix).redis, args.customers, args.events)
            customers = ReadModel.of(settings).count()
            print(f"bench preview: {customers:,} customers in Redis after {args.events:,} events "
                  f"(written in {time.monotonic() - t0:.1f}s)")
            candidate = load_ruleset(RULES.read_text().replace("version: 1", "version: 2")
                                     .replace(">= 10000", ">= 8000"))
            t0 = time.monotonic()
            for jobs in sorted({1, args.jobs}):
                t0 = time.monotonic()
                transitions, count = preview.live(settings, candidate, quiet=True, jobs=jobs)
                took = time.monotonic() - t0
                print(f"rules preview ({count:,} customers, {jobs} job(s), {os.cpu_count()} cores) {took:6.1f} s  "
                      f"({count / took:,.0f} customers/s; {transitions.moving():,} would move)")
        finally:
            stop(server.pid)


if __name__ == "__main__":
    main()
