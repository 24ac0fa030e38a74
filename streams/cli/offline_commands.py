"""``segmenter`` commands that need no broker and no Redis: classify CSV exports, check rules, JSON Schemas,
demo data. Each imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys

from segmenter.errors import SegmenterError
from streams.cli.common import CliError, load_rules, load_settings
from streams.settings import Settings


def cmd_classify(args: argparse.Namespace) -> int:
    from segmenter.rows import parse_time
    from streams.cli.classify_job import ClassifyJob, load_population, write_output
    from streams.cli.csv_input import BadRows

    settings = load_settings()
    policy = settings.policy()
    if (args.rules is None) == (args.compare is None):
        raise CliError("classify needs --rules FILE, or --compare OLD NEW (not both)")
    if args.compare:
        return _compare(args, settings)
    fmt = args.format or "csv"
    if fmt not in ("csv", "jsonl"):
        raise CliError(f"--format {fmt} is for --compare; segments are written as csv or jsonl")
    ruleset = load_rules(args.rules, policy.money_scale)
    try:
        as_of_day = policy.calendar.day(parse_time(args.as_of, policy.timezone, "--as-of"))
    except SegmenterError as exc:
        raise CliError(str(exc)) from None
    job = ClassifyJob(ruleset, policy, as_of_day, args.transactions, args.interactions, args.profiles)
    bad = BadRows()
    population = load_population(job, bad, show_progress=not args.quiet)
    out = sys.stdout if args.out is None else args.out.open("w", encoding="utf-8", newline="")
    try:
        count = write_output(population, job, fmt, out)
    finally:
        if out is not sys.stdout:
            out.close()
    outcomes = {k.value: v for k, v in population.outcomes.items()}
    print(f"classified {count:,} customers as of {args.as_of} with {ruleset.id} v{ruleset.version}; "
          f"events: {outcomes or 'none'}, after as-of: {population.after_as_of:,}, bad rows: {bad.count:,}",
          file=sys.stderr)
    if bad.count:
        print(f"error: {bad.count:,} bad rows were skipped (see above)", file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace, settings: Settings) -> int:
    """The matrix from OLD's segments to NEW's over the same CSV population, as ``rules preview`` prints it."""
    from segmenter.classify import classify
    from segmenter.preview import Transitions, amount_12m_minor
    from segmenter.rows import parse_time
    from segmenter.state import EMPTY, advance
    from streams.cli import preview
    from streams.cli.classify_job import ClassifyJob, load_population
    from streams.cli.csv_input import BadRows

    policy = settings.policy()
    old, new = (load_rules(path, policy.money_scale) for path in args.compare)
    fmt = args.format or "table"
    if fmt not in ("table", "json"):
        raise CliError(f"--format {fmt}: a comparison is printed as table or json")
    try:
        as_of = policy.calendar.day(parse_time(args.as_of, policy.timezone, "--as-of"))
    except SegmenterError as exc:
        raise CliError(str(exc)) from None
    bad = BadRows()
    population = load_population(ClassifyJob(old, policy, as_of, args.transactions, args.interactions,
                                             args.profiles), bad, show_progress=not args.quiet)
    transitions = Transitions()
    customers = sorted(population.states.keys() | population.profiles.keys())
    for customer in customers:
        state = advance(population.states.get(customer, EMPTY), as_of, policy)
        profile = population.profiles.get(customer, {})
        before = dict(old.pairs(classify(old, state, as_of, policy, profile)))
        transitions.add(customer, before, new.pairs(classify(new, state, as_of, policy, profile)),
                        amount_12m_minor(state, as_of, policy))
    out = sys.stdout if args.out is None else args.out.open("w", encoding="utf-8")
    try:
        preview.show(transitions, new, len(customers), policy.money_scale, fmt=fmt, out=out)
    finally:
        if out is not sys.stdout:
            out.close()
    if bad.count:
        print(f"error: {bad.count:,} bad rows were skipped (see above)", file=sys.stderr)
        return 1
    return 0


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

    for kind, path in generate(DemoSpec(customers=args.customers, seed=args.seed), args.dir).items():
        print(f"{kind}: {path}")
    return 0
