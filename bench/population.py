"""Population classes (ABC, RFM): what a threshold update costs, and what the hysteresis band saves.

1. **Threshold update.** N customers over 8 partitions, each indexed by ranked value as a worker indexes them
   (``streams.worker.population.PartitionIndex``) and ranked from the partitions' summaries; then 1 % of them buy
   again, the summaries are taken anew and merged, and the customers whose class can change are found through the
   index and re-evaluated (``step.on_population``) under the ABC and RFM rules. Printed: customers re-evaluated,
   classes changed, and the time of the update (finding the candidates, re-evaluating them).
2. **No flapping.** The same stream of purchases applied in rounds of 1 % of the customers, the ranks taken anew
   after each round, with and without the hysteresis band: the number of ABC changes the rank updates caused.

Run: ``python -m bench.population`` (part of ``make bench``).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import yaml

from segmenter import step
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.rules import RuleSet, load_ruleset
from segmenter.state import EMPTY, PURCHASE, Fact, apply, hash_event_id, totals_at
from streams.worker.population import PartitionIndex, candidates, merged, needed, summary_doc

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
DAY = 740_000  # the stream's day (a business day ordinal)


def ranked_rules() -> RuleSet:
    abc, rfm = (yaml.safe_load((ROOT / "examples" / "rules" / f"{n}.yaml").read_text()) for n in ("abc", "rfm"))
    return load_ruleset(yaml.safe_dump({"id": "ranked", "version": 1,
                                        "dimensions": {**abc["dimensions"], **rfm["dimensions"]}}))


class World:
    """N customers' records, per partition, indexed as a worker indexes them."""

    def __init__(self, customers: int, ruleset: RuleSet, band: float, seed: int = 1) -> None:
        self.ruleset, self.band, self.policy = ruleset, band, Policy()
        self.rng = random.Random(seed)
        self.records: list[dict[str, step.CustomerRecord]] = [{} for _ in range(PARTITIONS)]
        self.index = [PartitionIndex(needed(ruleset)) for _ in range(PARTITIONS)]
        self.ranks: Ranks | None = None
        self.left: dict[str, str | None] = {}  # per customer, the ABC class its last move left
        self.flaps = 0  # rank-update moves back to the class just left (A -> B -> A)
        self.serial = 0
        for c in range(customers):
            customer = f"C{c:07d}"
            self.records[c % PARTITIONS][customer] = self._bought(step.CustomerRecord(), customer)

    def _bought(self, record: step.CustomerRecord, customer: str) -> step.CustomerRecord:
        self.serial += 1
        day = DAY - self.rng.randrange(0, 300)
        fact = Fact(day, PURCHASE, int(self.rng.lognormvariate(9, 1.2)), hash_event_id(f"e{self.serial}"))
        state, _ = apply(record.state if record.state is not EMPTY else EMPTY, fact, DAY, self.policy)
        record = record._replace(state=state)
        self.index[int(customer[1:]) % PARTITIONS].update(customer, self._values(record))
        return record

    def _values(self, record: step.CustomerRecord) -> tuple[int, int, int] | None:
        long = totals_at(record.state, DAY, self.policy).long
        last = record.state.last_purchase
        return (long[1], long[0], last) if long[0] and last is not None else None

    def buy(self, share: float) -> None:
        """``share`` of the customers buy once more, each reclassified then under the ranks in force (as the
        worker does on an event); those changes are not the rank updates' and are not counted."""
        for part in self.records:
            for customer in self.rng.sample(sorted(part), int(len(part) * share)):
                record = self._bought(part[customer], customer)
                if self.ranks is not None:
                    record, changes = step.on_population(record, DAY, self.ruleset, self.policy, self.ranks)
                    self._note(customer, changes)
                part[customer] = record

    def _note(self, customer: str, changes: list[step.AnyChange]) -> int:
        """Remember the ABC moves; returns how many went back to the class the customer had just left."""
        back = 0
        for c in changes:
            if isinstance(c, step.Change) and c.dimension == "abc":
                back += self.left.get(customer) == c.after
                self.left[customer] = c.before
        return back

    def update(self) -> tuple[int, int, int, float, float]:
        """New ranks from the partitions' summaries, adopted: (re-evaluated, ABC changes, all changes, find s,
        re-evaluate s)."""
        docs = {f"p{n}".encode(): summary_doc(n, index.summaries(1000)) for n, index in enumerate(self.index)}
        ranks = merged(docs, self.band)
        old, self.ranks = self.ranks, ranks
        t0 = time.perf_counter()
        found = [(n, candidates(index, self.ruleset.boundaries, old, ranks, self.band))
                 for n, index in enumerate(self.index)]
        t1 = time.perf_counter()
        looked = changed = every = 0
        for n, customers in found:
            part = self.records[n]
            for customer in customers:
                looked += 1
                record, changes = step.on_population(part[customer], DAY, self.ruleset, self.policy, ranks)
                part[customer] = record
                changed += sum(1 for c in changes if isinstance(c, step.Change) and c.dimension == "abc")
                every += len(changes)
                if old is not None:
                    self.flaps += self._note(customer, changes)
        return looked, changed, every, t1 - t0, time.perf_counter() - t1


def threshold_update(customers: int) -> None:
    t0 = time.perf_counter()
    world = World(customers, ranked_rules(), band=1.0)
    world.update()  # the first ranks: every customer evaluated once
    built = time.perf_counter() - t0
    world.buy(0.01)
    looked, _, every, find_s, eval_s = world.update()
    print(f"threshold update, {customers:>9,} customers (built in {built:5.1f}s): {looked:>7,} re-evaluated "
          f"({100 * looked / customers:.1f} %), {every:,} class changes; candidates found in {1000 * find_s:,.0f} "
          f"ms, re-evaluated in {1000 * eval_s:,.0f} ms")


def flapping(customers: int, rounds: int) -> None:
    counts = {}
    for band in (0.0, 1.0):
        world = World(customers, ranked_rules(), band=band, seed=7)
        world.update()
        world.left.clear()
        total = 0
        for _ in range(rounds):
            world.buy(0.01)
            total += world.update()[1]
        counts[band] = (total, world.flaps)
    print(f"no flapping, {customers:,} customers, {rounds} rounds of 1 % buying again, the ranks updated after each: "
          f"ABC changes caused by rank updates (of them back to the class just left): {counts[0.0][0]:,} "
          f"({counts[0.0][1]:,}) without a band, {counts[1.0][0]:,} ({counts[1.0][1]:,}) with a 1-point band")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000", help="customer counts for the threshold update")
    parser.add_argument("--flapping-customers", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        threshold_update(size)
    flapping(args.flapping_customers, args.rounds)


if __name__ == "__main__":
    main()
