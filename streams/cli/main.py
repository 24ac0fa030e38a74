"""The ``segmenter`` command: the parser, and one sentence and exit 1 for any failure it can explain.

Commands live in ``offline_commands`` (no broker), ``stream_commands`` (the running system) and ``demo_tour``;
each imports the heavy rooms it needs (faust, aiokafka) when it runs, so ``segmenter --help`` stays quick.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from segmenter.errors import SegmenterError
from streams.cli import (
    backup,
    demo_tour,
    erase,
    offline_commands,
    override_commands,
    quality,
    report,
    stack_commands,
    stream_commands,
    tag_commands,
)
from streams.cli.common import CliError, load_settings
from streams.text import masked_url

SERVICES = ("up", "worker", "actions", "api", "demo")  # long-running commands: their logs are kept whole


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segmenter", description="Streaming customer segmenter.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", help="classify customers from CSV files, without a broker")
    p.add_argument("--rules", type=Path, help="ruleset YAML (not with --compare)")
    p.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"),
                   help="instead of segments: the transition matrix from OLD's segments to NEW's")
    p.add_argument("--transactions", type=Path, required=True, help="transactions CSV")
    p.add_argument("--interactions", type=Path, help="interactions CSV")
    p.add_argument("--profiles", type=Path, help="profiles CSV")
    p.add_argument("--as-of", required=True, help="date (end of that day) or ISO time")
    p.add_argument("--format", choices=("csv", "jsonl", "table", "json"), default=None,
                   help="csv or jsonl (default csv); with --compare: table or json (default table)")
    p.add_argument("--out", type=Path, help="output file (default: stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=offline_commands.cmd_classify)

    rules = sub.add_parser("rules", help="check, apply and show rulesets").add_subparsers(
        dest="rules_cmd", required=True)
    p = rules.add_parser("check", help="validate a ruleset and report gaps and unreachable segments")
    p.add_argument("file", type=Path)
    p.set_defaults(func=offline_commands.cmd_rules_check)

    schemas_p = sub.add_parser("schemas", help="JSON Schemas of every event")
    schemas_sub = schemas_p.add_subparsers(dest="schemas_cmd", required=True)
    p = schemas_sub.add_parser("export", help="write <model>.schema.json files into DIR")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=offline_commands.cmd_schemas_export)

    p = sub.add_parser("settings", help="every SEGMENTER_* setting, its default and meaning (a Markdown table)")
    p.add_argument("--readme", type=Path, help="write the table into this file, between its settings markers")
    p.set_defaults(func=offline_commands.cmd_settings)

    stream_commands.register(sub, rules)
    override_commands.register(sub)
    tag_commands.register(sub)
    report.register(sub)
    quality.register(sub)
    backup.register(sub)
    stack_commands.register(sub)
    erase.register(sub)

    demo = sub.add_parser("demo", help="synthetic data for trying segmenter out")
    demo_sub = demo.add_subparsers(dest="demo_cmd", required=True)
    p = demo_sub.add_parser("generate", help="write transactions/interactions/profiles CSVs into DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--categories", action="store_true", help="a product category and a profit on every "
                   "transaction (产品偏好, 利润率)")
    p.set_defaults(func=offline_commands.cmd_demo_generate)
    p = demo_sub.add_parser("run", help="up, apply rules, import a year of history, stream live events, report")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--live-seconds", type=float, default=15.0)
    p.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p.set_defaults(func=lambda args: demo_tour.run(args, main))
    p = demo_sub.add_parser("offline", help="generate, check the retail rules, classify, report")
    p.add_argument("--dir", type=Path, default=Path("var/demo"))
    p.add_argument("--customers", type=int, default=3000)
    p.set_defaults(func=lambda args: demo_tour.offline(args, main))
    return parser


def unreachable(exc: BaseException) -> str | None:
    """One sentence when ``exc`` says the Kafka broker or Redis could not be reached, naming the address tried
    and the way to fix it; None for any other error. (The client libraries are looked up only if loaded.)"""
    redis_errors, kafka_errors = sys.modules.get("redis.exceptions"), sys.modules.get("aiokafka.errors")
    fix = "start the embedded stack with `segmenter up --detach`, or set {} to where yours runs"
    if redis_errors is not None and isinstance(exc, redis_errors.AuthenticationError):
        return (f"Redis at {masked_url(load_settings().redis_url)} refused the credentials: set "
                "SEGMENTER_REDIS_USERNAME and SEGMENTER_REDIS_PASSWORD to its user and password")
    if redis_errors is not None and isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        url = masked_url(load_settings().redis_url)
        return f"cannot reach Redis at {url} ({exc}): " + fix.format("SEGMENTER_REDIS_URL")
    if kafka_errors is not None and isinstance(exc, kafka_errors.KafkaConnectionError | kafka_errors.KafkaTimeoutError
                                               | kafka_errors.NoBrokersAvailable):
        servers = load_settings().kafka_bootstrap
        return f"cannot reach the Kafka broker at {servers} ({exc}): " + fix.format("SEGMENTER_KAFKA_BOOTSTRAP")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    if args.command not in SERVICES:  # a failed connection is said once, below, not also by aiokafka's log
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return func(args)
    except BrokenPipeError:  # `segmenter export | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
