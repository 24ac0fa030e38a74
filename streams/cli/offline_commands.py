"""``segmenter`` commands that need no broker and no Redis: classify CSV exports, check rules, JSON Schemas,
demo data. Each imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from segmenter.errors import SegmenterError
from segmenter.policy import Policy
from segmenter.rules import RuleSet
from streams.cli.common import CliError, load_rules, load_settings
from streams.settings import settings_table

if TYPE_CHECKING:
    from segmenter.population import Population
    from streams.cli.classify_job import ClassifyJob
    from streams.cli.csv_input import BadRows


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """``path`` opened for writing, or standard output."""
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        yield out


def _population(args: argparse.Namespace, ruleset: RuleSet,
                policy: Policy) -> tuple[Population, BadRows, ClassifyJob]:
    """The CSV exports of ``args`` loaded as of ``--as-of``: (population, bad rows, the job)."""
    from segmenter.rows import parse_time
    from streams.cli.classify_job import ClassifyJob, load_population
    from streams.cli.csv_input import BadRows

    try:
        as_of_day = policy.calendar.day(parse_time(args.as_of, policy.timezone, "--as-of"))
    except SegmenterError as exc:
        raise CliError(str(exc)) from None
    job = ClassifyJob(ruleset, policy, as_of_day, args.transactions, args.interactions, args.profiles)
    bad = BadRows()
    return load_population(job, bad, show_progress=not args.quiet), bad, job


def _bad_rows(bad: BadRows) -> int:
    if bad.count:
        print(f"error: {bad.count:,} bad rows were skipped (see above)", file=sys.stderr)
        return 1
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from streams.cli.classify_job import write_output

    settings = load_settings()
    policy = settings.policy()
    if (args.rules is None) == (args.compare is None):
        raise CliError("classify needs --rules FILE, or --compare OLD NEW (not both)")
    if args.compare:
        return _compare(args, policy)
    fmt = args.format or "csv"
    if fmt not in ("csv", "jsonl"):
        raise CliError(f"--format {fmt} is for --compare; segments are written as csv or jsonl")
    ruleset = load_rules(args.rules, policy.money_scale)
    population, bad, job = _population(args, ruleset, policy)
    with _output(args.out) as out:
        count = write_output(population, job, fmt, out)
    outcomes = {k.value: v for k, v in population.outcomes.items()}
    print(f"classified {count:,} customers as of {args.as_of} with {ruleset.id} v{ruleset.version}; "
          f"events: {outcomes or 'none'}, after as-of: {population.after_as_of:,}, bad rows: {bad.count:,}",
          file=sys.stderr)
    return _bad_rows(bad)


def _compare(args: argparse.Namespace, policy: Policy) -> int:
    """The matrix from OLD's segments to NEW's over the same CSV population, as ``rules preview`` prints it."""
    from segmenter.preview import Transitions, candidate_segments
    from segmenter.state import EMPTY, advance, amount_12m_minor
    from streams.cli import preview

    old, new = (load_rules(path, policy.money_scale) for path in args.compare)
    fmt = args.format or "table"
    if fmt not in ("table", "json"):
        raise CliError(f"--format {fmt}: a comparison is printed as table or json")
    population, bad, job = _population(args, old, policy)
    as_of = job.as_of_day
    transitions = Transitions()
    customers = sorted(population.states.keys() | population.profiles.keys())
    for customer in customers:
        state = advance(population.states.get(customer, EMPTY), as_of, policy)
        profile = population.profiles.get(customer, {})
        transitions.add(customer, dict(candidate_segments(old, state, as_of, policy, profile)),
                        candidate_segments(new, state, as_of, policy, profile), amount_12m_minor(state, as_of, policy))
    with _output(args.out) as out:
        preview.show(transitions, new, len(customers), policy.money_scale, fmt=fmt, out=out)
    return _bad_rows(bad)


def cmd_rules_check(args: argparse.Namespace) -> int:
    from segmenter.rules.check import check_ruleset

    ruleset = load_rules(args.file, load_settings().money_scale)
    print(f"{args.file}: ruleset {ruleset.id} v{ruleset.version} is valid "
          f"({len(ruleset.dimensions)} dimension(s))")
    for report in check_ruleset(ruleset):
        names = [s.name for s in next(d for d in ruleset.dimensions if d.name == report.name).segments]
        print(f"\ndimension {report.name}: {' > '.join(names)}")
        if report.skipped:
            print(f"  gap analysis skipped: {report.skipped}")
        for gap in report.gaps:
            print(f"  gap (falls to the default): {gap}")
        for item in report.unreachable:
            print(f"  unreachable: {item}")
        if not report.skipped and not report.gaps and not report.unreachable:
            print("  no gaps, every segment reachable")
    if ruleset.tags:
        print("\ntags:")
        for tag in ruleset.tags:
            print(f"  {tag.name}: {tag.reason({})}")
    if ruleset.actions:
        print("\nactions:")
        for action in ruleset.actions:
            print(f"  {action.describe(ruleset.rosters)}")
    return 0


def cmd_schemas_export(args: argparse.Namespace) -> int:
    from schemas import json_schemas

    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in json_schemas().items():
        (args.dir / name).write_text(text, encoding="utf-8")
        print(args.dir / name)
    return 0


def cmd_demo_generate(args: argparse.Namespace) -> int:
    from streams.cli.demo_data import DemoSpec, generate

    spec = DemoSpec(customers=args.customers, seed=args.seed, categories=args.categories)
    for kind, path in generate(spec, args.dir).items():
        print(f"{kind}: {path}")
    return 0


BEGIN, END = "<!-- settings:begin -->\n", "<!-- settings:end -->"


def with_settings_table(text: str) -> str:
    """``text`` with the settings table between its markers rendered anew from the settings class."""
    if BEGIN not in text or END not in text:
        raise CliError(f"no {BEGIN.strip()} ... {END} markers to write the table between")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + settings_table() + END + rest.split(END, 1)[1]


def cmd_settings(args: argparse.Namespace) -> int:
    if args.readme is None:
        print(settings_table(), end="")
        return 0
    args.readme.write_text(with_settings_table(args.readme.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"the settings table in {args.readme} is current")
    return 0
