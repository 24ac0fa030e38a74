"""Core benchmark: events/s through apply + classify on one core, and bytes per customer.

Run with ``make bench``. The population is synthetic and seeded: customers with a skewed number
of events spread over a year, about 10 % interactions and 3 % refunds, fed in time order with
stream time following the events, classified with the retail ruleset after every event (what the
worker does). The same stream runs twice: without product categories, then with a category and a profit on
every transaction (``CATEGORIES`` names, skewed, the state keeping ``Policy.max_categories`` by name), so the
state's cost of categories reads beside the plain one. Figures go to stdout.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import date
from pathlib import Path

from segmenter import codec
from segmenter.classify import classify
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, INTERACTION, PURCHASE, REFUND, Fact, WindowState, apply
from streams import collector

ROOT = Path(__file__).resolve().parent.parent
FLUSH_EVERY = 5000  # events between the worker's flushes, roughly (SEGMENTER_FLUSH_MAX_DIRTY customers or 0.5 s)
START = date(2025, 7, 1).toordinal()


CATEGORIES = [f"品类{n:02d}" for n in range(40)]  # 40 names: past the default bound of 20 kept per customer


def make_events(customers: int, events: int, seed: int = 11, *, categories: bool = False) -> list[tuple[int, Fact]]:
    rng = random.Random(seed)
    kinds = random.Random(seed + 1)  # categories draw apart, so both runs see the same days, kinds and amounts
    category_weights = [1 / (n + 1) for n in range(len(CATEGORIES))]
    weights = [rng.paretovariate(1.5) for _ in range(customers)]
    who = rng.choices(range(customers), weights=weights, k=events)
    out = []
    for n, c in enumerate(who):
        day = START + n * 365 // events
        roll = rng.random()
        kind = INTERACTION if roll < 0.10 else REFUND if roll < 0.13 else PURCHASE
        amount = 0 if kind == INTERACTION else rng.randrange(1_000, 500_000)
        fact = Fact(day, kind, amount, rng.randbytes(8), rng.random() < 0.05, False,
                    rng.randrange(0, 6) if kind == INTERACTION else 0)
        if categories and kind != INTERACTION:
            fact = fact._replace(category=kinds.choices(CATEGORIES, category_weights)[0],
                                 profit=amount * kinds.randrange(-10, 40) // 100)
        out.append((c, fact))
    return out


def run(customers: int, events: int, *, categories: bool = False) -> dict[str, float]:
    policy = Policy()
    ruleset = load_ruleset((ROOT / "examples/rules/retail-value.yaml").read_text())
    stream = make_events(customers, events, categories=categories)
    states: dict[int, WindowState] = {}
    segments: dict[int, tuple[str, ...]] = {}
    changes = 0
    collector.take_over()  # as the worker does: no automatic collection, survivors frozen at each flush
    flushes = collector.Collector(full_every_s=0)
    t0 = time.perf_counter()
    for n, (customer, fact) in enumerate(stream):
        if not n % FLUSH_EVERY:
            flushes.freeze()
        state, _ = apply(states.get(customer, EMPTY), fact, fact.day, policy)
        states[customer] = state
        now = classify(ruleset, state, fact.day, policy)  # what the worker's step does
        if segments.get(customer) != now:
            segments[customer] = now
            changes += 1
    elapsed = time.perf_counter() - t0
    sizes = [len(codec.dumps(s)) for s in states.values()]
    t1 = time.perf_counter()
    for s in states.values():
        codec.loads(codec.dumps(s))
    codec_s = time.perf_counter() - t1
    return {
        "events": events, "customers_seen": len(states), "seconds": elapsed,
        "events_per_s": events / elapsed, "changes": changes,
        "bytes_mean": statistics.fmean(sizes), "bytes_median": statistics.median(sizes),
        "bytes_p99": sorted(sizes)[int(len(sizes) * 0.99)],
        "codec_roundtrips_per_s": len(sizes) / codec_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    for categories in (False, True):
        r = run(args.customers, args.events, categories=categories)
        if not categories:
            print(f"core: {r['events']:,} events, {r['customers_seen']:,} customers, {r['changes']:,} segment "
                  "changes")
        else:
            print(f"core: the same with a category ({len(CATEGORIES)} names, {Policy().max_categories} kept per "
                  "customer) and a profit on every transaction")
        print(f"core: apply + classify      {r['events_per_s']:>12,.0f} events/s  (one core, {r['seconds']:.2f}s)")
        print(f"core: state bytes/customer  mean {r['bytes_mean']:.1f}  median {r['bytes_median']:.0f}  "
              f"p99 {r['bytes_p99']}")
        print(f"core: codec dumps+loads     {r['codec_roundtrips_per_s']:>12,.0f} states/s")


if __name__ == "__main__":
    main()
