"""``segmenter`` commands that need no broker and no Redis: classify CSV exports, check rules, JSON Schemas,
demo data. Each imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys

from segmenter.errors import SegmenterError
from streams.cli.common import CliError, load_rules, load_settings


def cmd_classify(args: argparse.Namespace) -> int:
    from segmenter.rows import parse_time
    from streams.cli.classify_job import ClassifyJob, load_population, write_output
    from streams.cli.csv_input import BadRows

    settings = load_settings()
    policy = settings.policy()
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
        count = write_output(population, job, args.format, out)
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
