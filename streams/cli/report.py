"""``segmenter report``: the Pareto table per dimension, tags, quarantined customers, actions, and with ``--since``
the movement (from -> to) from the day summaries the workers keep in Redis; as a table, CSV or JSON, and ``--chart``
as a picture (PNG or SVG, matplotlib)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from segmenter.actions import duration_s
from streams.cli.common import CliError, load_settings
from streams.readmodel.movement import Movement
from streams.readmodel.pareto import ParetoRow, described, pareto
from streams.readmodel.reader import ReadModel
from streams.text import SafeCsvWriter, clip, pad


def pareto_table(rows: list[ParetoRow]) -> str:
    lines = [f"{'dimension':<14} {'segment':<16} {'customers':>10} {'share':>7} {'amount_12m':>16} {'share':>7} "
             f"{'cum. customers':>14} {'cum. amount':>11}  label"]
    lines += [f"{pad(r.dimension, 14)} {pad(r.segment, 16)} {r.customers:>10,} {r.share:>6.1f}% "
              f"{r.amount_12m:>16,.2f} {r.amount_share:>6.1f}% {r.cumulative_share:>13.1f}% "
              f"{r.cumulative_amount_share:>10.1f}%  {clip(r.label or '', 40)}".rstrip()
              for r in rows]
    strategies = [(r.dimension, r.segment, r.strategy) for r in rows if r.strategy]
    if strategies:
        lines.append("\nstrategies (策略):")
        lines += [f"  {dimension}.{segment}: {clip(strategy, 200)}" for dimension, segment, strategy in strategies]
    return "\n".join(lines)


def movement_rows(moved: Movement) -> list[dict[str, Any]]:
    return [{"dimension": d, "from": f, "to": t, "customers": m.customers, "amount_12m": str(m.amount_12m)}
            for (d, f, t), m in sorted(moved.moves.items(), key=lambda item: (item[0][0], -item[1].customers))]


def cmd_report(args: argparse.Namespace) -> int:
    settings = load_settings()
    model = ReadModel.of(settings)
    from streams.kafka.control import rulesets_in_force

    rows = described(pareto(model.report(settings.money_scale)), asyncio.run(rulesets_in_force(settings)))
    moved = None
    if args.since:
        try:
            span = timedelta(seconds=duration_s(args.since))
        except ValueError as exc:
            raise CliError(f"--since {args.since!r}: {exc}") from None
        moved = model.movement(span, settings.money_scale)
    if args.chart:
        from streams.cli.charts import draw

        draw(Path(args.chart), rows, moved)
        print(f"chart written to {args.chart}", file=sys.stderr)
    if args.format == "json":
        doc: dict[str, Any] = {"segments": [r.doc() for r in rows], "tags": model.tag_counts()}
        if moved is not None:
            doc["movement"] = {"since": moved.since, "until": moved.until, "moves": movement_rows(moved)}
        print(orjson.dumps(doc, default=str).decode())
    elif args.format == "csv":
        writer = SafeCsvWriter(sys.stdout)
        writer.writerow(["dimension", "segment", "customers", "share", "amount_12m", "amount_share",
                         "cumulative_share", "cumulative_amount_share", "label", "strategy"])
        writer.writerows([r.dimension, r.segment, r.customers, f"{r.share:.4f}", r.amount_12m,
                          f"{r.amount_share:.4f}", f"{r.cumulative_share:.4f}", f"{r.cumulative_amount_share:.4f}",
                          r.label or "", r.strategy or ""]
                         for r in rows)
        if moved is not None:  # a second table after a blank line
            print()
            writer.writerow(["dimension", "from", "to", "customers", "amount_12m"])
            writer.writerows(list(row.values()) for row in movement_rows(moved))
    else:
        _table(model, rows, moved)
    return 0


def _table(model: ReadModel, rows: list[ParetoRow], moved: Movement | None) -> None:
    print(pareto_table(rows))
    tags = model.tag_counts()
    if tags:
        everyone = model.count() or 1
        print(f"\n{'tag':<32} {'customers':>10} {'share':>7}")
        for tag, count in sorted(tags.items(), key=lambda item: (-item[1], item[0])):
            print(f"{pad(tag, 32)} {count:>10,} {100 * count / everyone:>6.1f}%")
    if moved is not None:
        if moved.since is None:
            print("\nmovement: no segment change on the topic yet")
        else:
            print(f"\nmovement, stream time {moved.since:%Y-%m-%d %H:%M} .. {moved.until:%Y-%m-%d %H:%M}:")
            print(f"{'dimension':<14} {'from':<16} {'to':<16} {'customers':>10} {'amount_12m':>16}")
            for row in movement_rows(moved):
                print(f"{pad(row['dimension'], 14)} {pad(row['from'], 16)} {pad(row['to'], 16)} "
                      f"{row['customers']:>10,} {float(row['amount_12m']):>16,.2f}")
    quarantined = model.quarantined()
    if quarantined:
        print(f"\n{len(quarantined):,} customer(s) quarantined: Redis refused their rows, so they are missing above "
              f"(their state is safe; their next accepted write brings them back):")
        for customer, why in sorted(quarantined.items())[:10]:
            print(f"  {clip(customer)}: {clip(why.get('error'), 120)} (partition {why.get('partition')}, "
                  f"since {why.get('at')})")
    actions = model.action_counts()
    if actions:
        columns = (("issued", 8), ("cooldown", 9), ("replay", 8), ("dwell", 7), ("recovery", 9))
        print(f"\n{'segment':<30} {'action':<20} " + " ".join(f"{o:>{w}}" for o, w in columns))
        for (segment, action), counts in sorted(actions.items()):
            print(f"{pad(segment, 30)} {pad(action, 20)} " + " ".join(f"{counts.get(o, 0):>{w},}" for o, w in columns))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="per segment: customers, amount, shares and cumulative shares; --since: "
                                      "movement; --chart: a picture")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--since", help="also the movement (from -> to) within this span of the newest stream time, "
                                   "e.g. 7d or 12h, read from the segment-changes topic")
    p.add_argument("--chart", help="draw segment sizes (and the movement) to FILE.png or FILE.svg")
    p.set_defaults(func=cmd_report)
