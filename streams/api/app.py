"""The HTTP API (``segmenter api``): FastAPI over the Redis read model, producing overrides and rulesets to their
topics like the CLI does. No faust internals: it reads what the workers project and writes what they consume.

Reads: ``GET /customers/{id}``, ``/segments``, ``/segments/{dimension}/{segment}/members``,
``/tags/{tag}/members``, ``/health``, ``/ready``. Changes: ``POST /overrides``,
``DELETE /overrides/{customer}/{dimension}``, ``POST /rules``: they need ``Authorization: Bearer <token>``
(``SEGMENTER_API_TOKEN``; unset, changes are refused), reads too when the API listens beyond loopback or with
``SEGMENTER_API_TOKEN_FOR_READS``; streams/api/guard.py checks it before a body is read. Every
error is JSON: ``{"error": "..."}`` with a 4xx (or 503) status. OpenAPI at ``/openapi.json``, docs at ``/docs``.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, Field

from schemas.events import Override
from segmenter.actions import duration_s
from segmenter.errors import SegmenterError
from segmenter.rules import load_ruleset
from streams.api import dashboard
from streams.api.guard import Guard, check_settings
from streams.api.state import Api, api_error, json_response
from streams.kafka.control import RulesRefusedError, active_segments, apply_rules, send_customer_record
from streams.kafka.topics import missing_topics
from streams.settings import Settings


class ApiError(BaseModel):
    error: str = Field(description="What is wrong, in one sentence.")


class SegmentRow(BaseModel):
    """One segment of a dimension in ``GET /segments`` (the Pareto table)."""

    segment: str
    customers: int
    share: float = Field(description="Of the dimension's customers, in percent.")
    amount_12m: Decimal
    amount_share: float = Field(description="Of the dimension's summed amount_12m, in percent.")
    cumulative_share: float = Field(description="Customers of this and every segment above it by amount, percent.")
    cumulative_amount_share: float
    label: str | None = Field(None, description="The segment's label in the ruleset in force, where one is written.")
    strategy: str | None = Field(None, description="What to do with its customers, as the ruleset writes it.")
    purchases_12m: int | None = Field(None, description="Its members' purchases in the long window.")
    avg_order_value_12m: Decimal | None = Field(None, description="Their amount_12m over their purchases.")
    repurchase_rate: float | None = Field(None, description="The share of members with two purchases or more "
                                          "(复购率), 0 to 1. Like amount_12m, as of each member's last change.")


class Members(BaseModel):
    members: list[str]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last one.")


class OverrideRequest(BaseModel):
    customer_id: Annotated[str, Field(min_length=1, max_length=256)]
    dimension: Annotated[str, Field(min_length=1, max_length=64)]
    segment: Annotated[str, Field(min_length=1, max_length=64)]
    reason: Annotated[str, Field(min_length=1, max_length=256)]
    by: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="Who: the token's name, which is recorded whatever is given; a different name is refused.")
    until: AwareDatetime | None = Field(None, description="It expires by itself at the start of that day.")


class Accepted(BaseModel):
    accepted: bool = True
    detail: str


def create_api(settings: Settings) -> FastAPI:
    """The API; raises ``ApiConfigError`` for settings that would leave it open (streams/api/guard.py)."""
    check_settings(settings)
    api = Api(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        await api.redis.aclose()

    app = FastAPI(title="segmenter", version="1", lifespan=lifespan,
                  description="Customer segments, live: the read model the segmenter workers keep, and the changes "
                              "operators make (overrides, rulesets).",
                  responses={400: {"model": ApiError}, 401: {"model": ApiError}, 403: {"model": ApiError},
                             404: {"model": ApiError}, 422: {"model": ApiError}})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    _health(app, api)
    _reads(app, api)
    dashboard.register(app, api)
    _changes(app, api)
    app.add_middleware(Guard, settings=settings)
    return app


def _health(app: FastAPI, api: Api) -> None:
    settings = api.settings

    @app.get("/health", summary="the API process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Redis, the broker and the workers answer", responses={503: {"model": ApiError}})
    async def ready(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await api.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # reported, not raised: this is the readiness report
            checks["redis"] = f"unreachable: {exc}"
        try:
            missing = await missing_topics(settings)  # a metadata round trip; a probe creates nothing
            checks["broker"] = "ok" if not missing else f"reachable, but topics are missing: {', '.join(missing)}"
        except Exception as exc:
            checks["broker"] = f"unreachable: {exc}"
        clocks = await api.clock() if checks["redis"] == "ok" else {}
        checks["workers"] = (f"{len(clocks)} partition clocks published" if clocks
                             else "no partition clock published yet (no worker has processed a record)")
        ok = checks["redis"] == "ok" and checks["broker"] == "ok" and bool(clocks)
        body: dict[str, Any] = {"ready": ok} if ok else {"error": "not ready", "ready": False}
        if request.scope.get("state", {}).get("authorised"):  # hosts, ports and topics only for the token
            body["checks"] = checks
        return JSONResponse(body, status_code=200 if ok else 503)


def _reads(app: FastAPI, api: Api) -> None:
    @app.get("/customers/{customer_id}", summary="one customer: segments, tags, metrics, why, recent changes")
    async def customer(customer_id: str) -> Response:
        doc = await api.customer(customer_id)
        if doc is None:
            raise api_error(404, f"customer {customer_id!r} is not known")
        return json_response(doc)

    @app.get("/segments", summary="per dimension: customers, share, summed amount_12m, cumulative shares",
             response_model=dict[str, list[SegmentRow]])
    async def segments() -> Response:
        out: dict[str, list[dict[str, Any]]] = {}
        for row in await api.pareto():
            out.setdefault(row.dimension, []).append({k: v for k, v in row.doc().items() if k != "dimension"})
        return json_response(out)

    @app.get("/movement", summary="from -> to: customers and amount_12m that moved within a span of stream time")
    async def moves(since: Annotated[str, Query(description="like 7d, 12h")] = "7d") -> Response:
        try:
            span = timedelta(seconds=duration_s(since))
        except ValueError as exc:
            raise api_error(400, f"since {since!r}: {exc}") from None
        moved = await api.movement(span)
        return json_response({"since": moved.since, "until": moved.until, "moves": [
            {"dimension": d, "from": f, "to": t, "customers": m.customers, "amount_12m": m.amount_12m}
            for (d, f, t), m in sorted(moved.moves.items())]})

    @app.get("/segments/{dimension}/{segment}/members", summary="a segment's customers, a page at a time",
             response_model=Members)
    async def segment_members(dimension: str, segment: str, cursor: str | None = None,
                              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Response:
        return await api.members(f"{api.prefix}:m:{dimension}:{segment}", cursor, limit)

    @app.get("/tags/{tag}/members", summary="the customers with a tag, a page at a time",
             response_model=Members)
    async def tag_members(tag: str, cursor: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Response:
        return await api.members(f"{api.prefix}:t:{tag}", cursor, limit)


def _changes(app: FastAPI, api: Api) -> None:
    settings = api.settings

    async def send_override(doc: Override) -> None:
        await send_customer_record(settings, api.names.overrides, doc.dimension, doc)

    def author(http: Request, given: str | None) -> str:
        """The token's name, which every change records (with no token configured, reads only: never reached)."""
        who = http.scope.get("state", {}).get("principal")
        if who is None:
            raise api_error(401, "a valid 'Authorization: Bearer <token>' header is required")
        if given is not None and given != who.name:
            raise api_error(422, f"a change is recorded under the token's name ({who.name}), not {given!r}: leave "
                                 "the name out")
        return str(who.name)

    @app.post("/overrides", status_code=202, summary="pin a customer's dimension to a segment")
    async def set_override(request: OverrideRequest, http: Request) -> Accepted:
        by = author(http, request.by)
        known = await active_segments(settings)
        if request.dimension not in known:
            raise api_error(422, f"no active ruleset has a dimension {request.dimension!r} "
                              f"(dimensions: {', '.join(sorted(known)) or 'none'})")
        if request.segment not in known[request.dimension]:
            raise api_error(422, f"dimension {request.dimension} has no segment {request.segment!r} "
                              f"(segments: {', '.join(sorted(known[request.dimension]))})")
        await send_override(Override(event_id=f"override-{uuid.uuid4().hex}", customer_id=request.customer_id,
                                     dimension=request.dimension, segment=request.segment, by=by,
                                     reason=request.reason, occurred_at=datetime.now(UTC), expires_at=request.until))
        return Accepted(detail=f"{request.customer_id}: {request.dimension} pinned to {request.segment}; the owning "
                               "worker applies it")

    @app.delete("/overrides/{customer_id}/{dimension}", status_code=202, summary="clear an override")
    async def clear_override(customer_id: str, dimension: str, reason: Annotated[str, Query(min_length=1)],
                             http: Request, by: Annotated[str | None, Query(min_length=1)] = None) -> Accepted:
        by = author(http, by)
        await send_override(Override(event_id=f"override-{uuid.uuid4().hex}", customer_id=customer_id,
                                     dimension=dimension, segment=None, by=by, reason=reason,
                                     occurred_at=datetime.now(UTC)))
        return Accepted(detail=f"{customer_id}: the override of {dimension} is cleared; the rules decide again")

    @app.post("/rules", status_code=202, summary="validate a ruleset (YAML body), then apply it",
              openapi_extra={"requestBody": {
                  "required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}})
    async def post_rules(request: Request, message: str = "", dry_run: bool = False,
                         by: Annotated[str | None, Query(alias="author", min_length=1)] = None) -> Accepted:
        who = author(request, by)
        body = await request.body()
        try:
            ruleset = await asyncio.to_thread(  # off the event loop: the other requests go on meanwhile
                load_ruleset, body.decode("utf-8", errors="replace"), "request body", settings.money_scale)
        except SegmenterError as exc:
            raise api_error(422, str(exc)) from None
        if dry_run:
            return Accepted(accepted=False, detail=f"{ruleset.id} v{ruleset.version} is valid; not applied (dry_run)")
        try:
            await apply_rules(settings, ruleset, "api", who, message)
        except RulesRefusedError as exc:
            raise api_error(409, str(exc)) from None
        return Accepted(detail=f"published {ruleset.id} v{ruleset.version}; workers adopt it and reclassify")
