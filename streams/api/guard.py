"""The API's door, an ASGI middleware in front of FastAPI: the token is checked and the body's size bounded before
any byte of the body is read, so neither a bad token nor a huge body costs more than its headers.

- ``Authorization: Bearer <token>`` is compared in constant time; an empty or absent one never matches.
- Changes (every method but GET/HEAD/OPTIONS) always need the token; reads need it when ``api_token_for_reads``
  says so, which by default is whenever the API listens on anything but a loopback address.
- ``/health``, ``/ready`` (yes or no only; its details need the token) and the OpenAPI pages are open.
- A body is read whole up to ``api_max_body_bytes`` and handed on; past it, 413 and the connection's rest unread.
- The Host header must name an allowed host (``api_allowed_hosts``; loopback names by default), which a web page
  cannot forge: a page on another site that rebinds its DNS name to 127.0.0.1 still sends its own name.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from segmenter.errors import SegmenterError
from streams.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MIN_TOKEN = 16
OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class ApiConfigError(SegmenterError, ValueError):
    """The API's settings would leave it open (an empty or short token): it does not start."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reads_need_token(settings: Settings) -> bool:
    """Reads are behind the token when set so, and by default whenever the API listens beyond this machine."""
    if settings.api_token_for_reads is not None:
        return settings.api_token_for_reads
    return not is_loopback(settings.api_host)


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host header names (without port) the API answers: the setting's, or loopback names and the bound address."""
    if settings.api_allowed_hosts:
        return frozenset(h.strip().lower() for h in settings.api_allowed_hosts.split(",") if h.strip())
    names = set(LOOPBACK_NAMES)
    if settings.api_host not in ("0.0.0.0", "::"):  # noqa: S104 (compared with, not bound to)
        names.add(settings.api_host.lower())
    return frozenset(names)


def check_settings(settings: Settings) -> None:
    """Refuse, in one sentence, settings that would open the API: a token set but empty or short, reads in the open
    on a public address without a token."""
    token = settings.api_token
    if token is not None and len(token.get_secret_value()) < MIN_TOKEN:
        length = len(token.get_secret_value())
        what = "set but empty" if length == 0 else f"{length} characters long"
        raise ApiConfigError(
            f"SEGMENTER_API_TOKEN is {what}: use at least {MIN_TOKEN} random characters (make one with `python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'`), or unset it to refuse every change")
    if token is None and reads_need_token(settings):
        raise ApiConfigError(
            f"the API would listen on {settings.api_host}, beyond this machine, and customer data is read only "
            "with a token: set SEGMENTER_API_TOKEN, or SEGMENTER_API_TOKEN_FOR_READS=false to serve reads openly")


def token_matches(settings: Settings, authorization: str | None) -> bool:
    secret = settings.api_token
    if secret is None or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


class Guard:
    """The ASGI middleware described in the module's docstring."""

    def __init__(self, app: App, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.hosts = allowed_hosts(settings)
        self.limit = settings.api_max_body_bytes
        self.reads_need_token = reads_need_token(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = _host_name(headers.get("host", ""))
        if "*" not in self.hosts and host not in self.hosts:
            await _refuse(send, 400, f"the Host header {host[:64]!r} is not one this API answers to "
                                     "(SEGMENTER_API_ALLOWED_HOSTS)")
            return
        method, path = scope["method"], scope["path"]
        scope.setdefault("state", {})["authorised"] = authorised = token_matches(
            self.settings, headers.get("authorization"))
        needs = method not in READ_METHODS or (self.reads_need_token and path not in OPEN_PATHS)
        if needs and not authorised:
            if self.settings.api_token is None and method not in READ_METHODS:
                await _refuse(send, 403, "changes are refused: no SEGMENTER_API_TOKEN is set on the server")
            else:
                await _refuse(send, 401, "a valid 'Authorization: Bearer <token>' header is required",
                              [(b"www-authenticate", b"Bearer")])
            return
        declared = headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > self.limit):
            await _refuse(send, 413, f"the body is larger than {self.limit:,} bytes (SEGMENTER_API_MAX_BODY_BYTES)")
            return
        if method in READ_METHODS:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, self.limit)
        if body is None:
            await _refuse(send, 413, f"the body is larger than {self.limit:,} bytes (SEGMENTER_API_MAX_BODY_BYTES)")
            return
        await self.app(scope, _replay(body, receive), send)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


async def _refuse(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
