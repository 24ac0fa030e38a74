"""``segmenter classify``: run the core over CSV exports without any broker (backtesting)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import orjson

from segmenter.errors import InvalidEventError
from segmenter.facts import fact_of_interaction, fact_of_transaction, profile_attributes
from segmenter.metrics import WINDOW_METRICS
from segmenter.policy import Policy
from segmenter.population import Population
from segmenter.rows import Row, RowReader
from segmenter.rules.compiler import RuleSet
from streams.cli.csv_input import BadRows, read_rows
from streams.progress import Progress
from streams.text import SafeCsvWriter


@dataclass(frozen=True)
class ClassifyJob:
    ruleset: RuleSet
    policy: Policy
    as_of_day: int
    transactions: Path
    interactions: Path | None = None
    profiles: Path | None = None


def load_population(job: ClassifyJob, bad: BadRows, show_progress: bool = True) -> Population:
    population = Population(job.policy)
    policy, as_of = job.policy, job.as_of_day
    files: list[tuple[str, Path | None]] = [
        ("transactions", job.transactions), ("interactions", job.interactions), ("profiles", job.profiles)
    ]
    for kind, path in files:
        if path is None:
            continue
        handle = _handler(kind, RowReader(policy.timezone, kind[:2]), population, policy, as_of)
        progress = Progress(f"read {path.name}", path.stat().st_size if path.is_file() else None,
                            unit="bytes") if show_progress else None
        for line, row in read_rows(path, kind, bad, progress):
            try:
                handle(row)
            except (InvalidEventError, ValueError) as exc:
                bad.report(path, line, exc)
        if progress:
            progress.close()
    return population


def _handler(kind: str, reader: RowReader, population: Population, policy: Policy, as_of: int
             ) -> Callable[[Row], None]:
    def transaction(row: Row) -> None:
        tx = reader.transaction(row)
        population.add(tx.customer_id, fact_of_transaction(tx, policy), as_of)

    def interaction(row: Row) -> None:
        ix = reader.interaction(row)
        population.add(ix.customer_id, fact_of_interaction(ix, policy), as_of)

    def profile(row: Row) -> None:
        _add_profile(population, reader, row)

    return {"transactions": transaction, "interactions": interaction, "profiles": profile}[kind]


def _add_profile(population: Population, reader: RowReader, row: Row) -> None:
    profile = reader.profile(row)
    population.set_profile(profile.customer_id, profile_attributes(profile))


def write_output(population: Population, job: ClassifyJob, fmt: str, out: TextIO) -> int:
    dims = [d.name for d in job.ruleset.dimensions]
    count = 0
    writer = SafeCsvWriter(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["customer_id", *dims, "tags", *WINDOW_METRICS])
    for item in population.classify(job.ruleset, job.as_of_day):
        count += 1
        if writer:
            writer.writerow([item.customer_id, *item.segments, ";".join(item.tags),
                             *("" if item.metrics[m] is None else item.metrics[m] for m in WINDOW_METRICS)])
        else:
            doc = {"customer_id": item.customer_id, **dict(zip(dims, item.segments, strict=True)),
                   "tags": list(item.tags), **{m: _json(item.metrics[m]) for m in WINDOW_METRICS}}
            out.write(orjson.dumps(doc).decode() + "\n")
    return count


def _json(value: object) -> object:
    return str(value) if value is not None and not isinstance(value, int | str) else value
