"""``rules preview`` and ``classify --compare``: the transition matrix a candidate ruleset would cause, printed
the same way whether it comes from the live read model or from CSV exports."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from typing import TextIO

import orjson

from segmenter import step
from segmenter.preview import Transitions, preview_record
from segmenter.rules import RuleSet, load_ruleset
from segmenter.rules.check import check_ruleset
from streams.progress import Progress
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.stored import HEADER
from streams.text import clip


def live(settings: Settings, candidate: RuleSet, samples: int = 3, quiet: bool = False, jobs: int | None = None
         ) -> tuple[Transitions, int]:
    """The candidate evaluated against every customer's state as the workers last projected it to Redis (all
    partitions, whichever worker owns them), as of its partition's stream time; nothing is written anywhere.

    The input partitions are evaluated apart, ``jobs`` processes at a time (default: one per core), and their
    matrices merged. Returns the transitions and the number of customers."""
    model = ReadModel.of(settings)
    total = model.count()
    per_partition = model.partition_counts(settings.partitions)
    progress = None if quiet else Progress("preview", total, unit="customers")
    transitions, count = Transitions(samples=samples), 0
    parts: list[int | None] = [None]  # customers projected before the per-partition sets existed: one scan
    if sum(per_partition.values()) == total:
        parts = [p for p, _ in sorted(per_partition.items(), key=lambda item: -item[1]) if per_partition[p]]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(parts)))
    work = [(settings, candidate.source, candidate.id, candidate.version, part, samples) for part in parts]
    if jobs == 1:
        results: Iterable[tuple[Transitions, int]] = map(_evaluate, work)
        pool = None
    else:
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_evaluate, work)
    try:
        for part_transitions, part_count in results:
            transitions.merge(part_transitions)
            count += part_count
            if progress:
                progress.update(count)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if progress:
            progress.close()
    return transitions, count


def _evaluate(work: tuple[Settings, str, str, int, int | None, int]) -> tuple[Transitions, int]:
    """One input partition (None: all) under the candidate (its text: compiled rules do not cross processes)."""
    settings, text, ruleset_id, version, partition, samples = work
    candidate = load_ruleset(text, f"{ruleset_id} v{version}", settings.money_scale)
    model, policy = ReadModel.of(settings), settings.policy()
    clock = model.clock()
    transitions, count = Transitions(samples=samples), 0
    header = HEADER.size
    for chunk in model.records(partition=partition):
        count += len(chunk)
        for customer, number, raw in chunk:
            now = clock.get(number)
            if now is None:
                continue  # a partition whose clock was never published holds no classified customer yet
            state, record = step.loads_shallow(raw[header:])
            after, amount = preview_record(candidate, state, record, now[1], policy)
            transitions.add(customer, dict(record.segments), after, amount)
    return transitions, count


def cells_json(transitions: Transitions, money_scale: int) -> list[dict[str, object]]:
    return [{"dimension": dim, "from": was, "to": now, "customers": cell.customers,
             "amount_12m": str(Decimal(cell.amount_minor).scaleb(-money_scale)), "samples": cell.samples}
            for (dim, was, now), cell in sorted(transitions.cells.items())]


def show(transitions: Transitions, candidate: RuleSet, customers: int, money_scale: int, *, fmt: str = "table",
         out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up per call: a default bound at import outlives a replaced sys.stdout
    if fmt == "json":
        out.write(orjson.dumps({"ruleset": candidate.id, "version": candidate.version, "customers": customers,
                                "cells": cells_json(transitions, money_scale)}).decode() + "\n")
        return
    for dim in candidate.dimensions:
        cells = sorted(((was, now), cell) for (d, was, now), cell in transitions.cells.items() if d == dim.name)
        moving = sum(cell.customers for (was, now), cell in cells if was != now)
        out.write(f"\n{dim.name}: {moving:,} of {customers:,} customers would move under {candidate.id} "
                  f"v{candidate.version}\n")
        out.write(f"  {'from':<16} {'to':<16} {'customers':>10} {'amount_12m':>16}  e.g.\n")
        for (was, now), cell in sorted(cells, key=lambda c: (c[0][0] == c[0][1], -c[1].customers)):
            amount = Decimal(cell.amount_minor).scaleb(-money_scale)
            example = ", ".join(clip(s, 24) for s in cell.samples) if was != now else "(stays)"
            out.write(f"  {clip(was, 16):<16} {clip(now, 16):<16} {cell.customers:>10,} {amount:>16,.2f}  {example}\n")
    for report in check_ruleset(candidate):
        for gap in report.gaps:
            out.write(f"\n{report.name}: gap (falls to the default): {gap}")
        for item in report.unreachable:
            out.write(f"\n{report.name}: unreachable: {item}")
    out.write("\n")
