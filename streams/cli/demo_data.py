"""A synthetic CRM population for the demo, the tests and the benchmarks (seeded, reproducible)."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

KINDS = ("visit", "consult", "complaint", "praise", "campaign", "referral", "survey")
REGIONS = ("north", "south", "east", "west")
INDUSTRIES = ("retail", "finance", "education", "manufacturing")
CATEGORIES = {"图书": 0.30, "电子产品": 0.08, "服装": 0.45, "食品": 0.20, "家居": 0.35, "美妆": 0.55}  # name: margin


@dataclass(frozen=True)
class DemoSpec:
    customers: int = 3000
    days: int = 365
    end: datetime = datetime(2026, 6, 30, 18, 0, tzinfo=UTC)
    seed: int = 7
    refund_rate: float = 0.04
    categories: bool = False  # each transaction with a category and a profit (a customer keeps to a favourite)


def _customer_rate(rng: random.Random) -> float:
    """Purchases per year: most customers buy a few times, a few buy a lot."""
    tier = rng.random()
    if tier < 0.10:
        return rng.uniform(12, 30)
    if tier < 0.35:
        return rng.uniform(5, 10)
    return rng.uniform(0.5, 4)


def generate(spec: DemoSpec, out_dir: Path) -> dict[str, Path]:
    rng = random.Random(spec.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"{k}.csv" for k in ("transactions", "interactions", "profiles")}
    start = spec.end - timedelta(days=spec.days)
    with (paths["transactions"].open("w", newline="") as tf, paths["interactions"].open("w", newline="") as inf,
          paths["profiles"].open("w", newline="") as pf):
        tx = csv.writer(tf)
        tx.writerow(["event_id", "customer_id", "occurred_at", "kind", "amount", "order_id", "channel",
                     *(("category", "profit") if spec.categories else ())])
        picks = random.Random(spec.seed + 1)  # apart, so the rest of the data is the same with categories or without
        names = list(CATEGORIES)
        ix = csv.writer(inf)
        ix.writerow(["event_id", "customer_id", "occurred_at", "kind", "channel", "satisfaction"])
        pr = csv.writer(pf)
        pr.writerow(["customer_id", "type", "industry", "region", "size"])
        for c in range(spec.customers):
            cid = f"C{c:07d}"
            pr.writerow([cid, "enterprise" if rng.random() < 0.2 else "individual", rng.choice(INDUSTRIES),
                         rng.choice(REGIONS), rng.choice(("small", "medium", "large"))])
            active_until = spec.end if rng.random() > 0.2 else start + timedelta(days=rng.uniform(0, spec.days))
            span = max((active_until - start).total_seconds(), 1.0)
            n = max(1, round(_customer_rate(rng) * span / (365 * 86400)))
            favourite = picks.choice(names)
            for k in range(n):
                when = start + timedelta(seconds=rng.uniform(0, span))
                amount = round(rng.lognormvariate(6.5, 0.8), 2)
                category = favourite if picks.random() < 0.7 else picks.choice(names)
                extra = (category, f"{amount * CATEGORIES[category]:.2f}") if spec.categories else ()
                tx.writerow([f"{cid}-t{k}", cid, when.isoformat(), "purchase", f"{amount:.2f}", f"{cid}-o{k}", "web",
                             *extra])
                if rng.random() < spec.refund_rate:
                    later = when + timedelta(days=rng.uniform(1, 20))
                    if later < spec.end:
                        refund = round(amount * rng.choice((1.0, 0.5)), 2)
                        back = (category, f"{refund * CATEGORIES[category]:.2f}") if spec.categories else ()
                        tx.writerow([f"{cid}-r{k}", cid, later.isoformat(), "refund", f"{refund:.2f}",
                                     f"{cid}-o{k}", "web", *back])
            for k in range(rng.randrange(0, 6)):
                when = start + timedelta(seconds=rng.uniform(0, spec.days * 86400))
                kind = rng.choice(KINDS)
                sat = rng.randint(1, 5) if kind in ("survey", "consult", "complaint") else ""
                ix.writerow([f"{cid}-i{k}", cid, when.isoformat(), kind, "app", sat])
    return paths
