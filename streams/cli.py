"""The ``segmenter`` command. Each subcommand imports what it needs when it runs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from segmenter.errors import SegmenterError

SERVICES = ("up", "worker", "actions", "demo")  # long-running commands: their logs are kept whole


class CliError(Exception):
    """A failure to report as one sentence and exit 1."""


def _settings():  # type: ignore[no-untyped-def]
    from streams.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"setting SEGMENTER_{str(first['loc'][0]).upper()}" if first["loc"] else "settings"
        raise CliError(f"bad {where}: {first['msg']}") from None


def _load_rules(path: Path, money_scale: int):  # type: ignore[no-untyped-def]
    from segmenter.rules import load_ruleset

    if not path.is_file():
        raise CliError(f"rules file {path} does not exist")
    return load_ruleset(path.read_text(encoding="utf-8"), str(path), money_scale)


def cmd_classify(args: argparse.Namespace) -> int:
    from segmenter.rows import parse_time
    from streams.offline import BadRows, ClassifyJob, load_population, write_output

    settings = _settings()
    policy = settings.policy()
    ruleset = _load_rules(args.rules, policy.money_scale)
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

    ruleset = _load_rules(args.file, _settings().money_scale)
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
    from streams.demo import DemoSpec, generate

    for kind, path in generate(DemoSpec(customers=args.customers, seed=args.seed), args.dir).items():
        print(f"{kind}: {path}")
    return 0


def cmd_demo_offline(args: argparse.Namespace) -> int:
    """Generate a population, check the retail rules, classify it offline and print a report."""
    from collections import Counter

    from streams.demo import DemoSpec, generate

    root = Path(__file__).resolve().parent.parent
    rules = root / "examples" / "rules" / "retail-value.yaml"
    out_dir = Path(args.dir)
    paths = generate(DemoSpec(customers=args.customers), out_dir)
    print(f"$ segmenter rules check {rules.relative_to(root)}")
    cmd_rules_check(argparse.Namespace(file=rules))
    result = out_dir / "segments.csv"
    print(f"\n$ segmenter classify --rules ... --as-of 2026-06-30 --out {result}")
    status = main(["classify", "--rules", str(rules), "--transactions", str(paths["transactions"]),
                   "--interactions", str(paths["interactions"]), "--profiles", str(paths["profiles"]),
                   "--as-of", "2026-06-30", "--out", str(result)])
    import csv

    with result.open() as handle:
        counts = Counter(row["value"] for row in csv.DictReader(handle))
    total = sum(counts.values())
    print("\nsegment        customers  share")
    for name, n in counts.most_common():
        print(f"{name:<14} {n:>9,}  {100 * n / total:5.1f}%")
    return status


def _demo_run(args: argparse.Namespace) -> int:
    from streams.demo_run import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segmenter", description="Streaming customer segmenter.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", help="classify customers from CSV files, without a broker")
    p.add_argument("--rules", type=Path, required=True, help="ruleset YAML")
    p.add_argument("--transactions", type=Path, required=True, help="transactions CSV")
    p.add_argument("--interactions", type=Path, help="interactions CSV")
    p.add_argument("--profiles", type=Path, help="profiles CSV")
    p.add_argument("--as-of", required=True, help="date (end of that day) or ISO time")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", type=Path, help="output file (default: stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_classify)

    rules = sub.add_parser("rules", help="check, apply and show rulesets").add_subparsers(
        dest="rules_cmd", required=True)
    p = rules.add_parser("check", help="validate a ruleset and report gaps and unreachable segments")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_rules_check)

    schemas_p = sub.add_parser("schemas", help="JSON Schemas of every event")
    schemas_sub = schemas_p.add_subparsers(dest="schemas_cmd", required=True)
    p = schemas_sub.add_parser("export", help="write <model>.schema.json files into DIR")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=cmd_schemas_export)

    from streams.cli_stream import register

    register(sub, rules)

    demo = sub.add_parser("demo", help="synthetic data for trying segmenter out")
    demo_sub = demo.add_subparsers(dest="demo_cmd", required=True)
    p = demo_sub.add_parser("generate", help="write transactions/interactions/profiles CSVs into DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo_generate)
    p = demo_sub.add_parser("run", help="up, apply rules, import a year of history, stream live events, report")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--live-seconds", type=float, default=15.0)
    p.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p.set_defaults(func=_demo_run)
    p = demo_sub.add_parser("offline", help="generate, check the retail rules, classify, report")
    p.add_argument("--dir", type=Path, default=Path("var/demo"))
    p.add_argument("--customers", type=int, default=3000)
    p.set_defaults(func=cmd_demo_offline)
    return parser


def unreachable(exc: BaseException) -> str | None:
    """One sentence when ``exc`` says the Kafka broker or Redis could not be reached, naming the address tried
    and the way to fix it; None for any other error. (The client libraries are looked up only if loaded.)"""
    redis_errors, kafka_errors = sys.modules.get("redis.exceptions"), sys.modules.get("aiokafka.errors")
    fix = "start the embedded stack with `segmenter up --detach`, or set {} to where yours runs"
    if redis_errors is not None and isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        url = _settings().redis_url
        return f"cannot reach Redis at {url} ({exc}): " + fix.format("SEGMENTER_REDIS_URL")
    if kafka_errors is not None and isinstance(exc, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError
                                               | kafka_errors.NoBrokersAvailable):
        servers = _settings().kafka_bootstrap
        return f"cannot reach the Kafka broker at {servers} ({exc}): " + fix.format("SEGMENTER_KAFKA_BOOTSTRAP")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    if args.command not in SERVICES:  # a failed connection is said once, below, not also by aiokafka's log
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return func(args)
    except (CliError, SegmenterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        sentence = unreachable(exc)
        if sentence is None:
            raise
        print(f"error: {sentence}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: the subcommands import streams.cli, and
    # errors they raise must be the classes main() catches (else a bad setting prints a traceback).
    from streams.cli import main as _main

    sys.exit(_main())
