"""``segmenter report``: the Pareto table per dimension, tags, quarantined customers, actions, and with ``--since``
the movement (from -> to) from the day summaries the workers keep in Redis; as a table, CSV or JSON, and ``--chart``
as a picture (PNG or SVG, matplotlib)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from segmenter.actions import duration_s
from streams.cli.common import CliError, load_settings
from streams.readmodel.movement import Movement
from streams.readmodel.pareto import ParetoRow, described, pareto, with_kpis
from streams.readmodel.reader import ReadModel
from streams.readmodel.scan import Scan, Since, cohorts
from streams.text import SafeCsvWriter, clip, pad


def pareto_table(rows: list[ParetoRow]) -> str:
    lines = [f"{'dimension':<14} {'segment':<16} {'customers':>10} {'share':>7} {'amount_12m':>16} {'share':>7} "
             f"{'cum. customers':>14} {'cum. amount':>11} {'avg. order':>11} {'repurchase':>10}  label"]
    lines += [f"{pad(r.dimension, 14)} {pad(r.segment, 16)} {r.customers:>10,} {r.share:>6.1f}% "
              f"{r.amount_12m:>16,.2f} {r.amount_share:>6.1f}% {r.cumulative_share:>13.1f}% "
              f"{r.cumulative_amount_share:>10.1f}% {_aov(r.avg_order_value_12m):>11} "
              f"{_rate(r.repurchase_rate):>10}  {clip(r.label or '', 40)}".rstrip()
              for r in rows]
    strategies = [(r.dimension, r.segment, r.strategy) for r in rows if r.strategy]
    if strategies:
        lines.append("\nstrategies (策略):")
        lines += [f"  {dimension}.{segment}: {clip(strategy, 200)}" for dimension, segment, strategy in strategies]
    return "\n".join(lines)


def _aov(value: str | None) -> str:
    return "-" if value is None else f"{Decimal(value):,.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def movement_rows(moved: Movement) -> list[dict[str, Any]]:
    return [{"dimension": d, "from": f, "to": t, "customers": m.customers, "amount_12m": str(m.amount_12m)}
            for (d, f, t), m in sorted(moved.moves.items(), key=lambda item: (item[0][0], -item[1].customers))]


def cmd_report(args: argparse.Namespace) -> int:
    settings = load_settings()
    model = ReadModel.of(settings)
    from streams.kafka.control import rulesets_in_force

    table = pareto(model.report(settings.money_scale))
    rows = described(with_kpis(table, model.kpi_sums(r.dimension for r in table), settings.money_scale),
                     asyncio.run(rulesets_in_force(settings)))
    moved = None
    if args.since:
        try:
            span = timedelta(seconds=duration_s(args.since))
        except ValueError as exc:
            raise CliError(f"--since {args.since!r}: {exc}") from None
        moved = model.movement(span, settings.money_scale)
    since = Since(moved.since, settings.story_changes) if args.kpis and moved and moved.since else None
    found = scan_all(settings, model, args.quiet, since) if args.kpis else None
    if args.chart:
        from streams.cli.charts import draw

        draw(Path(args.chart), rows, moved)
        print(f"chart written to {args.chart}", file=sys.stderr)
    if args.format == "json":
        _json(model, rows, moved, found, settings.money_scale)
    elif args.format == "csv":
        _csv(rows, moved, found, settings.money_scale)
    else:
        _table(model, rows, moved)
        if found is not None:
            print("\n" + kpi_table(found, settings.money_scale))
            if found.since is not None:
                print("\n" + cohort_table(found))
            print("\n" + quality_table(found))
    return 0


def _json(model: ReadModel, rows: list[ParetoRow], moved: Movement | None, found: Scan | None,
          money_scale: int) -> None:
    doc: dict[str, Any] = {"segments": [r.doc() for r in rows], "tags": model.tag_counts()}
    if moved is not None:
        doc["movement"] = {"since": moved.since, "until": moved.until, "moves": movement_rows(moved)}
    if found is not None:
        doc["kpis"] = kpi_rows(found, money_scale)
        doc["quality"] = quality_doc(found)
    if found is not None and found.since is not None:
        doc["cohorts"] = {"since": found.since.since.isoformat(), "segments": cohorts(found),
                          "unknown": found.since.unknown}
    print(orjson.dumps(doc, default=str).decode())


def _csv(rows: list[ParetoRow], moved: Movement | None, found: Scan | None, money_scale: int) -> None:
    """The report's tables as CSV, one after another, a blank line between."""
    writer = SafeCsvWriter(sys.stdout)
    writer.writerow(["dimension", "segment", "customers", "share", "amount_12m", "amount_share",
                     "cumulative_share", "cumulative_amount_share", "label", "strategy", "purchases_12m",
                     "avg_order_value_12m", "repurchase_rate"])
    writer.writerows([r.dimension, r.segment, r.customers, f"{r.share:.4f}", r.amount_12m,
                      f"{r.amount_share:.4f}", f"{r.cumulative_share:.4f}", f"{r.cumulative_amount_share:.4f}",
                      r.label or "", r.strategy or "", r.purchases_12m, r.avg_order_value_12m or "",
                      "" if r.repurchase_rate is None else r.repurchase_rate]
                     for r in rows)
    if moved is not None:
        print()
        writer.writerow(["dimension", "from", "to", "customers", "amount_12m"])
        writer.writerows(list(row.values()) for row in movement_rows(moved))
    if found is not None:
        print()
        writer.writerow(["dimension", "segment", "customers", "purchases_12m", "avg_order_value_12m",
                         "repurchase_rate"])
        writer.writerows(list(row.values()) for row in kpi_rows(found, money_scale))
    if found is not None and found.since is not None:
        print()
        writer.writerow(["dimension", "segment", "members", "stayed", "moved_up", "moved_down", "left", "churned"])
        writer.writerows(list(row.values()) for row in cohorts(found))


def cohort_table(found: Scan) -> str:
    """How each segment's members at the span's start did by now (the cohorts of ``report --since --kpis``)."""
    since = found.since
    assert since is not None
    lines = [f"the members of each segment at {since.since.isoformat()}, now:",
             f"{'dimension':<14} {'segment':<16} {'members':>9} {'stayed':>9} {'moved up':>9} {'moved down':>10} "
             f"{'left':>6} {'churned':>8}"]
    lines += [f"{pad(r['dimension'], 14)} {pad(r['segment'], 16)} {r['members']:>9,} {r['stayed']:>9,} "
              f"{r['moved_up']:>9,} {r['moved_down']:>10,} {r['left']:>6,} {r['churned']:>8,}" for r in cohorts(found)]
    lines.append("(up or down: into a segment whose members' average amount_12m is now greater or smaller; churned: no"
                 " purchase in the short window now)")
    if since.unknown:
        lines.append(f"{since.unknown:,} customers left out: more changes within the span than their story keeps "
                     "(SEGMENTER_STORY_CHANGES)")
    return "\n".join(lines)


def scan_all(settings: Any, model: ReadModel, quiet: bool, since: Since | None = None) -> Scan:
    from streams.progress import Progress
    from streams.readmodel.scan import scan

    progress = None if quiet else Progress("customers read", model.count(), unit="customers")
    try:
        return scan(model, settings.policy(), None if progress is None else progress.update, since)
    finally:
        if progress is not None:
            progress.close()


def kpi_rows(found: Scan, money_scale: int) -> list[dict[str, Any]]:
    """Per segment: customers, purchases, average order value and repurchase rate (share with 2+ purchases)."""
    return [{"dimension": dimension, "segment": segment, **kpi.doc(money_scale)}
            for (dimension, segment), kpi in sorted(found.kpis.items())]


def kpi_table(found: Scan, money_scale: int) -> str:
    lines = [f"{'dimension':<14} {'segment':<16} {'customers':>10} {'purchases':>10} {'avg order':>12} "
             f"{'repurchase':>10}   (each segment's members, over the long window)"]
    for row in kpi_rows(found, money_scale):
        rate = row["repurchase_rate"]
        lines.append(f"{pad(row['dimension'], 14)} {pad(row['segment'], 16)} {row['customers']:>10,} "
                     f"{row['purchases_12m']:>10,} {row['avg_order_value_12m'] or '-':>12} "
                     f"{'-' if rate is None else f'{100 * rate:.1f}%':>10}")
    return "\n".join(lines)


def quality_doc(found: Scan) -> dict[str, Any]:
    q = found.quality
    return {"customers": q.customers, "without_profile": q.without_profile, "missing": dict(sorted(q.missing.items())),
            "no_purchase_12m": q.no_purchase_12m, "no_interaction_12m": q.no_interaction_12m,
            "without_stream_time": q.unclocked}


def quality_table(found: Scan) -> str:
    """The data's completeness (数据质量), a line each, with shares of the customers."""
    q = found.quality
    everyone = max(q.customers, 1)

    def line(what: str, n: int) -> str:
        return f"  {pad(what, 34)} {n:>10,} {100 * n / everyone:>6.1f}%"

    lines = [f"data quality, {q.customers:,} customers:", line("without a profile", q.without_profile)]
    lines += [line(f"profile without {name}", n) for name, n in sorted(q.missing.items())]
    lines += [line("no purchase in the long window", q.no_purchase_12m),
              line("no interaction in the long window", q.no_interaction_12m)]
    if q.unclocked:
        lines.append(line("not yet classified (no stream time)", q.unclocked))
    return "\n".join(lines)


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
    p.add_argument("--kpis", action="store_true", help="also each segment's average order value and repurchase "
                   "rate, and the data's completeness: one pass over every customer")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_report)
