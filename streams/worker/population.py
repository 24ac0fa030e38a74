"""Population ranks, live: each partition indexes its customers by the values ranked (``segmenter.ranking``),
publishes a summary of them, and every worker merges every partition's latest summary into the same ranks.

Per partition, the index holds the population members (a purchase in the long window) in one sorted list per
ranked value the rules read, ``(value, customer)``: the summary is read from it in O(buckets log n), and when
the ranks move, the customers whose value lies between a boundary's old and new cutoff (the only ones whose
class can change) are found by range, not by a scan.

Summaries travel on ``<prefix>population`` (one partition, compacted, key ``p<partition>``). Every
``population_interval_s`` a worker publishes the summaries of its partitions that changed, reads what all workers
published, and adopts the merged ranks when they differ from those in force: thresholds are at most about two
intervals old.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sortedcontainers import SortedList

from segmenter.ranking import RANKED, Ranks, Summary, summarise_by
from segmenter.rules import RuleSet

_TOP = "\U0010ffff"  # sorts after any customer id: (value, _TOP) is past every entry of that value

Values = tuple[int, int, int]  # amount_12m, purchases_12m, last purchase day


@dataclass
class PartitionIndex:
    """One partition's population members by each ranked value the rules read (``metrics``: indexes into
    ``segmenter.ranking.RANKED``)."""

    metrics: tuple[int, ...]
    values: dict[str, Values] = field(default_factory=dict)
    sorted: dict[int, SortedList] = field(default_factory=dict)
    dirty: bool = True  # changed since its summary was last published

    def __post_init__(self) -> None:
        self.sorted = {m: SortedList() for m in self.metrics}

    def update(self, customer: str, values: Values | None) -> None:
        """The customer's ranked values now (None: not in the population)."""
        old = self.values.get(customer)
        if old == values:
            return
        for m, index in self.sorted.items():
            if old is not None:
                index.remove((old[m], customer))
            if values is not None:
                index.add((values[m], customer))
        if values is None:
            self.values.pop(customer, None)
        else:
            self.values[customer] = values
        self.dirty = True

    def between(self, metric: int, low: int, high: int) -> Iterator[str]:
        """Members whose ``metric`` is in [low, high]."""
        for _, customer in self.sorted[metric].irange((low, ""), (high, _TOP)):
            yield customer

    def summaries(self, buckets: int) -> list[Summary]:
        """One summary per ranked value (empty for those the rules do not read)."""
        return [_summary(self.sorted[m], buckets) if m in self.sorted else Summary(0) for m in range(len(RANKED))]


def _summary(index: SortedList, buckets: int) -> Summary:
    """``segmenter.ranking.summarise`` over a sorted list of (value, customer), read by position."""
    return summarise_by(len(index), lambda i: index[i][0], lambda v, _: index.bisect_right((v, _TOP)), buckets)


def needed(ruleset: RuleSet | None) -> tuple[int, ...]:
    """The ranked values a ruleset's rules read (none: no index)."""
    return tuple(sorted(ruleset.boundaries)) if ruleset is not None else ()


def summary_doc(partition: int, summaries: list[Summary]) -> bytes:
    return orjson.dumps({"partition": partition, "summaries": [s.to_json() for s in summaries]})


def merged(docs: Mapping[bytes, bytes], hysteresis: float) -> Ranks:
    """Every partition's latest summaries added up; ``key`` names them (the same on every worker)."""
    digest = hashlib.blake2b(digest_size=8)
    parts: list[list[Summary]] = [[] for _ in RANKED]
    for key in sorted(docs):
        digest.update(key)
        digest.update(docs[key])
        for m, summary in enumerate(orjson.loads(docs[key])["summaries"]):
            parts[m].append(Summary.from_json(summary))
    return Ranks((tuple(parts[0]), tuple(parts[1]), tuple(parts[2])), hysteresis=hysteresis,
                 key=digest.hexdigest())


def candidates(index: PartitionIndex, boundaries: Mapping[int, Iterable[float]], old: Ranks | None, new: Ranks,
               band: float) -> set[str]:
    """The members whose class can change when the ranks go from ``old`` to ``new``: those whose value lies
    between a boundary's old and new cutoff (each boundary, and its band's edges); everyone the first time."""
    if old is None:
        return set(index.values)
    out: set[str] = set()
    for metric, bounds in boundaries.items():
        if metric not in index.sorted:
            continue
        for bound in bounds:
            for edge in {bound - band, bound, bound + band}:
                cuts = [old.cutoff(metric, edge), new.cutoff(metric, edge)]
                if cuts[0] == cuts[1]:
                    continue
                top = _last(index, metric)
                low, high = sorted(top + 1 if c is None else c for c in cuts)
                out.update(index.between(metric, low, high))
    return out


def _last(index: PartitionIndex, metric: int) -> int:
    entries = index.sorted[metric]
    return int(entries[-1][0]) if entries else 0


def decode_docs(records: Iterable[Any]) -> dict[bytes, bytes]:
    """The population topic's records as key -> latest value (later records win)."""
    return {r.key: r.value for r in records if r.key is not None and r.value is not None}
