"""``rules preview`` and ``classify --compare``: the transition matrix a candidate ruleset would cause, printed
the same way whether it comes from the live read model or from CSV exports."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import TextIO

import orjson

from segmenter.preview import Transitions, candidate_segments
from segmenter.rules import RuleSet
from segmenter.rules.check import check_ruleset
from segmenter.state import amount_12m_minor
from streams.progress import Progress
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.stored import unpack
from streams.text import clip


def live(settings: Settings, candidate: RuleSet, samples: int = 3, quiet: bool = False) -> tuple[Transitions, int]:
    """The candidate evaluated against every customer's state as the workers last projected it to Redis (all
    partitions, whichever worker owns them), as of its partition's stream time; nothing is written anywhere.
    Returns the transitions and the number of customers."""
    model, policy = ReadModel.of(settings), settings.policy()
    clock = model.clock()
    transitions = Transitions(samples=samples)
    progress = None if quiet else Progress("preview", model.count(), unit="customers")
    count = 0
    for chunk in model.records():
        for customer, partition, raw in chunk:
            record = unpack(raw)
            now = clock.get(partition)
            if now is None:
                continue  # a partition whose clock was never published holds no classified customer yet
            day = now[1]
            transitions.add(customer, dict(record.segments),
                            candidate_segments(candidate, record.state, day, policy, record.profile),
                            amount_12m_minor(record.state, day, policy))
        count += len(chunk)
        if progress:
            progress.update(count)
    if progress:
        progress.close()
    return transitions, count


def cells_json(transitions: Transitions, money_scale: int) -> list[dict[str, object]]:
    return [{"dimension": dim, "from": was, "to": now, "customers": cell.customers,
             "amount_12m": str(Decimal(cell.amount_minor).scaleb(-money_scale)), "samples": cell.samples}
            for (dim, was, now), cell in sorted(transitions.cells.items())]


def show(transitions: Transitions, candidate: RuleSet, customers: int, money_scale: int, *, fmt: str = "table",
         out: TextIO = sys.stdout) -> None:
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
