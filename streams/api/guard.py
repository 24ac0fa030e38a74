"""The API's door, an ASGI middleware in front of FastAPI: the token is checked and the body's size bounded before
any byte of the body is read, so neither a bad token nor a huge body costs more than its headers.

- ``Authorization: Bearer <token>`` is compared in constant time; an empty or absent one never matches.
- Changes (every method but GET/HEAD/OPTIONS) always need a token; reads need one when ``api_token_for_reads``
  says so, which by default is whenever the API listens on anything but a loopback address. Each token has a name
  and a role (``api_tokens``): a viewer reads, an operator also pins and tags, an admin also applies rules; a
  change is recorded under the token's name.
- ``/health``, ``/ready`` (yes or no only; its details need the token) and the OpenAPI pages are open.
- A body is read whole up to ``api_max_body_bytes`` and handed on; past it, 413 and the connection's rest unread.
- The Host header must name an allowed host (``api_allowed_hosts``; loopback names by default), which a web page
  cannot forge: a page on another site that rebinds its DNS name to 127.0.0.1 still sends its own name.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
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


ROLES = ("viewer", "operator", "admin")  # each may do what the one before may, and more
NAME = re.compile(r"^[\w.@-]{1,64}$")


class ApiConfigError(SegmenterError, ValueError):
    """The API's settings would leave it open (an empty or short token): it does not start."""


@dataclass(frozen=True)
class Principal:
    """Who a token says the caller is: the token's name (recorded as the author of its changes) and its role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def tokens(settings: Settings) -> dict[str, Principal]:
    """token -> who holds it, from SEGMENTER_API_TOKENS (``name:role:token``, comma-separated) and
    SEGMENTER_API_TOKEN (``admin``); a malformed entry, an unknown role, a short token, a name or a token given
    twice stop the API in one sentence that never shows a token."""
    out: dict[str, Principal] = {}
    entries: list[tuple[str, str, str]] = []
    if settings.api_token is not None:
        token = settings.api_token.get_secret_value()
        if len(token) < MIN_TOKEN:
            what = "set but empty" if not token else f"{len(token)} characters long"
            raise ApiConfigError(
                f"SEGMENTER_API_TOKEN is {what}: use at least {MIN_TOKEN} random characters (make one with `python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'`), or unset it to refuse every change")
        entries.append(("admin", "admin", token))
    if settings.api_tokens is not None:
        for index, entry in enumerate(settings.api_tokens.get_secret_value().replace("\n", ",").split(",")):
            if not entry.strip():
                continue
            parts = entry.strip().split(":", 2)
            if len(parts) != 3 or not NAME.match(parts[0]) or parts[1] not in ROLES:
                raise ApiConfigError(f"SEGMENTER_API_TOKENS entry {index + 1} is not `name:role:token` with a name of "
                                     f"letters, digits and ._@- and a role of {', '.join(ROLES)}")
            entries.append((parts[0], parts[1], parts[2]))
    names: set[str] = set()
    for name, role, token in entries:
        if len(token) < MIN_TOKEN:
            what = "empty" if not token else f"{len(token)} characters long"
            raise ApiConfigError(
                f"the token of {name!r} is {what}: use at least {MIN_TOKEN} random characters (make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        if name in names or token in out:
            raise ApiConfigError(f"{name!r} is given twice, or shares its token with another name: one name, one "
                                 "token")
        names.add(name)
        out[token] = Principal(name, role)
    return out


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
    known = tokens(settings)
    if not known and reads_need_token(settings):
        raise ApiConfigError(
            f"the API would listen on {settings.api_host}, beyond this machine, and customer data is read only "
            "with a token: set SEGMENTER_API_TOKEN (or SEGMENTER_API_TOKENS), or SEGMENTER_API_TOKEN_FOR_READS=false "
            "to serve reads openly")


def principal(known: dict[str, Principal], authorization: str | None) -> Principal | None:
    """Who the ``Authorization: Bearer`` header names, compared with every token in constant time; None for none."""
    if not known or not authorization:
        return None
    scheme, _, given = authorization.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return None
    found = None
    for token, who in known.items():  # every one compared: the time says nothing of which matched
        if hmac.compare_digest(given.encode(), token.encode()):
            found = who
    return found


def token_matches(settings: Settings, authorization: str | None) -> bool:
    return principal(tokens(settings), authorization) is not None


def needed_role(method: str, path: str) -> str:
    """The least role a request needs: reads a viewer, overrides and manual tags an operator, anything else that
    changes something (rules) an admin."""
    if method in READ_METHODS:
        return "viewer"
    if path == "/overrides" or path.startswith(("/overrides/", "/tags/")):
        return "operator"
    return "admin"


class Guard:
    """The ASGI middleware described in the module's docstring."""

    def __init__(self, app: App, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.known = tokens(settings)
        self.hosts = allowed_hosts(settings)
        self.limit = settings.api_max_body_bytes
        self.reads_need_token = reads_need_token(settings)

    def _access(self, method: str, path: str, who: Principal | None) -> tuple[int, str] | None:
        """Why this caller may not make this request (status, message), or None."""
        if method in READ_METHODS and (not self.reads_need_token or path in OPEN_PATHS):
            return None
        if who is None:
            if not self.known and method not in READ_METHODS:
                return 403, "changes are refused: no SEGMENTER_API_TOKEN is set on the server"
            return 401, "a valid 'Authorization: Bearer <token>' header is required"
        role = needed_role(method, path)
        if not who.may(role):
            article = "an" if who.role[0] in "aeiou" else "a"
            return 403, f"{who.name} is {article} {who.role}: this needs the role {role}"
        return None

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
        who = principal(self.known, headers.get("authorization"))
        state = scope.setdefault("state", {})
        state["authorised"], state["principal"] = who is not None, who
        refusal = self._access(method, path, who)
        if refusal is not None:
            status, message = refusal
            await _refuse(send, status, message, [(b"www-authenticate", b"Bearer")] if status == 401 else None)
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
