"""The dashboard at ``/``: plain server-rendered HTML (no front-end build, no script): segment sizes per dimension
with bars, the movement of the last 7 days of stream time, consumer lag and stream time, and a customer lookup
box (a form: ``/?customer=ID``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from html import escape
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse

from streams.api.state import Api
from streams.kafka.lag import group_lag

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.2rem .6rem;text-align:right}
td:first-child,th:first-child{text-align:left}th{border-bottom:1px solid #999}
.bar{display:inline-block;height:.8rem;background:#4c78a8}.muted{color:#777}form{margin:1rem 0}"""


def register(app: FastAPI, api: Api) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(customer: Annotated[str | None, Query(max_length=256)] = None) -> HTMLResponse:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>segmenter</title>"
                 f"<style>{STYLE}</style></head><body><h1>segmenter</h1>"]
        parts.append(_lookup(customer, await api.customer(customer) if customer else None))
        parts.append(await _segments(api))
        parts.append(await _movement(api))
        parts.append(await _freshness(api))
        parts.append("</body></html>")
        return HTMLResponse("".join(parts))


def _lookup(customer: str | None, doc: dict[str, Any] | None) -> str:
    out = ["<h2>Customer</h2><form method='get' action='/'><input name='customer' placeholder='customer id' "
           f"value='{escape(customer or '')}'> <button type='submit'>Look up</button></form>"]
    if customer and doc is None:
        out.append(f"<p id='lookup'>customer {escape(customer)} is not known</p>")
    elif doc is not None:
        rows = "".join(f"<tr><td>{escape(d)}</td><td>{escape(s)}</td></tr>" for d, s in sorted(doc["segments"].items()))
        tags = ", ".join(escape(t["tag"]) for t in doc.get("tags", [])) or "none"
        out.append(f"<div id='lookup'><p>{escape(doc['customer_id'])}: tags {tags}</p>"
                   f"<table><tr><th>dimension</th><th>segment</th></tr>{rows}</table></div>")
    return "".join(out)


def _described(label: str | None, strategy: str | None) -> str:
    """A segment's label beside its name, and its strategy below it, escaped."""
    out = f" <span class='muted'>{escape(label)}</span>" if label else ""
    return out + (f"<div class='muted'>{escape(strategy)}</div>" if strategy else "")


def _aov(value: str | None) -> str:
    return "–" if value is None else f"{Decimal(value):,}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


async def _segments(api: Api) -> str:
    rows = await api.pareto()
    out = ["<h2>Segments</h2>"]
    for dim in sorted({r.dimension for r in rows}):
        mine = [r for r in rows if r.dimension == dim]
        top = max(r.customers for r in mine) or 1
        body = "".join(
            f"<tr class='segment' data-dimension='{escape(dim)}' data-segment='{escape(r.segment)}'>"
            f"<td>{escape(r.segment)}{_described(r.label, r.strategy)}</td>"
            f"<td class='customers'>{r.customers:,}</td><td>{r.share:.1f}%</td>"
            f"<td>{r.amount_12m:,.2f}</td><td>{r.cumulative_amount_share:.1f}%</td>"
            f"<td class='aov'>{_aov(r.avg_order_value_12m)}</td><td class='repurchase'>{_pct(r.repurchase_rate)}</td>"
            f"<td style='text-align:left'><span class='bar' style='width:{20 * r.customers / top:.1f}rem'></span>"
            "</td></tr>" for r in mine)
        out.append(f"<h3>{escape(dim)}</h3><table><tr><th>segment</th><th>customers</th><th>share</th>"
                   f"<th>amount_12m</th><th>cum. amount</th><th>avg. order</th><th>repurchase (复购率)</th>"
                   f"<th></th></tr>{body}</table>")
    if not rows:
        out.append("<p class='muted'>no classified customer yet</p>")
    return "".join(out)


async def _movement(api: Api) -> str:
    moved = await api.movement(timedelta(days=7))
    if moved.since is None or moved.until is None:
        return "<h2>Movement, last 7 days</h2><p class='muted'>no segment change yet</p>"
    body = "".join(f"<tr><td>{escape(d)}</td><td>{escape(f)}</td><td>{escape(t)}</td><td>{m.customers:,}</td>"
                   f"<td>{m.amount_12m:,.2f}</td></tr>"
                   for (d, f, t), m in sorted(moved.moves.items(), key=lambda item: -item[1].customers)[:30])
    span = (f"<h2>Movement, last 7 days</h2><p class='muted'>stream time {moved.since:%Y-%m-%d %H:%M} .. "
            f"{moved.until:%Y-%m-%d %H:%M}</p>")
    if not body:
        return span + "<p>no segment changed in these 7 days</p>"
    return (f"{span}<table><tr><th>dimension</th><th>from</th><th>to</th><th>customers</th><th>amount_12m</th></tr>"
            f"{body}</table>")


async def _freshness(api: Api) -> str:
    clock = await api.clock()
    times = "".join(f"<tr><td>{p}</td><td>{escape(str(t))}</td></tr>" for p, (t, _) in sorted(clock.items()))
    try:
        lags = await group_lag(api.settings, actions=True)
        lag_rows = "".join(f"<tr><td>{escape(g.group)}</td><td>{escape(g.tp.topic)}[{g.tp.partition}]</td>"
                           f"<td>{g.lag:,}</td></tr>" for g in lags if g.lag)
        totals: dict[str, int] = {}
        for g in lags:
            totals[g.group] = totals.get(g.group, 0) + g.lag
        table = f"<table><tr><th>group</th><th>partition</th><th>lag</th></tr>{lag_rows}</table>"
        lag = ("<p id='lag'>records not yet committed: "
               + ", ".join(f"<span class='group'>{escape(g)}: {n:,}</span>" for g, n in sorted(totals.items()))
               + "</p>" + (table if lag_rows else ""))
    except Exception as exc:  # the broker away: the rest of the page still shows
        lag = f"<p id='lag'>consumer lag unavailable: {escape(str(exc))}</p>"
    return (f"<h2>Freshness</h2>{lag}<table><tr><th>partition</th><th>stream time</th></tr>{times}</table>")
