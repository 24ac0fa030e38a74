"""The API's door (streams/api/guard.py), offline: settings that would open it are refused at start, the token is
checked before a body is read, bodies are bounded, the Host header is checked, rules are parsed off the event loop.
The same door on a live stack is in tests/integration/test_api.py."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from streams.api import app as api_app
from streams.api.app import create_api
from streams.api.guard import ApiConfigError
from streams.settings import Settings

TOKEN = "t" * 8 + "0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RETAIL = (Path(__file__).resolve().parents[2] / "examples" / "rules" / "retail-value.yaml").read_bytes()


def settings(**changes: Any) -> Settings:
    base = {"redis_url": "redis://127.0.0.1:1", "kafka_bootstrap": "127.0.0.1:1", "api_token": SecretStr(TOKEN)}
    return Settings(**{**base, **changes})


def client(s: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(s)), base_url="http://127.0.0.1:8080")


@pytest.mark.parametrize(("token", "said"), [("", "set but empty"), ("short", "5 characters long"),
                                             ("x" * 15, "15 characters long")])
def test_an_empty_or_short_token_stops_the_api_at_start(token, said):
    with pytest.raises(ApiConfigError, match=f"SEGMENTER_API_TOKEN is {said}: use at least 16 random characters"):
        create_api(settings(api_token=SecretStr(token)))


def test_listening_beyond_loopback_without_a_token_is_refused_unless_reads_are_opened_on_purpose():
    with pytest.raises(ApiConfigError, match="beyond this machine"):
        create_api(settings(api_token=None, api_host="0.0.0.0"))  # noqa: S104 (a setting, nothing is bound)
    create_api(settings(api_token=None, api_host="0.0.0.0", api_token_for_reads=False))  # noqa: S104


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer   ", "Basic " + TOKEN, TOKEN, "Bearer " + TOKEN[:-1],
                                    "Bearer " + TOKEN + "x"])
async def test_an_empty_or_wrong_bearer_never_opens_a_change(header):
    async with client(settings()) as api:
        answer = await api.post("/rules", params={"dry_run": "true"}, content=RETAIL,
                                headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json() == {"error": "a valid 'Authorization: Bearer <token>' header is required"}


async def test_without_a_token_on_the_server_an_empty_bearer_is_refused_too():
    async with client(settings(api_token=None)) as api:
        answer = await api.post("/rules", params={"dry_run": "true"}, content=RETAIL,
                                headers={"Authorization": "Bearer"})
    assert answer.status_code == 403
    assert "no SEGMENTER_API_TOKEN is set" in answer.json()["error"]


async def test_the_right_bearer_opens_a_change():
    async with client(settings()) as api:
        answer = await api.post("/rules", params={"dry_run": "true"}, content=RETAIL, headers=AUTH)
    assert answer.status_code == 202, answer.text
    assert "retail-value v1 is valid" in answer.json()["detail"]


async def test_the_token_is_checked_before_any_byte_of_the_body_is_read():
    app = create_api(settings())
    read: list[str] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        read.append("body")
        return {"type": "http.request", "body": RETAIL, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/rules", "raw_path": b"/rules", "query_string": b"author=a",
             "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(RETAIL)).encode())],
             "scheme": "http", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5000), "root_path": "",
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    await app(scope, receive, send)
    assert sent[0]["status"] == 401
    assert read == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_gets_413_unread(chunked):
    big = b"x" * (1024 * 1024 + 1)

    async def chunks():  # no Content-Length: the guard counts what arrives and stops at the limit
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    async with client(settings()) as api:
        answer = await api.post("/rules", content=chunks() if chunked else big, headers=AUTH)
    assert answer.status_code == 413
    assert "larger than 1,048,576 bytes" in answer.json()["error"]


@pytest.mark.parametrize(("host", "status"), [("evil.example", 400), ("rebound.attacker.test:8080", 400),
                                              ("localhost:8080", 200), ("127.0.0.1", 200), ("[::1]:8080", 200)])
async def test_the_host_header_must_name_this_api(host, status):
    async with client(settings()) as api:
        answer = await api.get("/health", headers={"Host": host})
    assert answer.status_code == status
    if status == 400:
        assert "SEGMENTER_API_ALLOWED_HOSTS" in answer.json()["error"]


async def test_allowed_hosts_are_a_setting():
    async with client(settings(api_allowed_hosts="segments.example.com")) as api:
        assert (await api.get("/health", headers={"Host": "segments.example.com"})).status_code == 200
        assert (await api.get("/health", headers={"Host": "localhost"})).status_code == 400


async def test_reads_need_the_token_by_default_beyond_loopback():
    async with client(settings(api_host="10.0.0.5", api_allowed_hosts="10.0.0.5")) as api:
        answer = await api.get("/segments", headers={"Host": "10.0.0.5"})
        assert answer.status_code == 401
        assert (await api.get("/health", headers={"Host": "10.0.0.5"})).status_code == 200


async def test_rules_are_parsed_off_the_event_loop(monkeypatch):
    release, entered = threading.Event(), threading.Event()
    real = api_app.load_ruleset

    def slow(*args: Any) -> Any:
        entered.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(api_app, "load_ruleset", slow)
    async with client(settings()) as api:
        parsing = asyncio.create_task(api.post("/rules", params={"dry_run": "true"}, content=RETAIL,
                                               headers=AUTH))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        health = await asyncio.wait_for(api.get("/health"), 5)  # answered while the parse is held
        assert health.status_code == 200
        assert not parsing.done()
        release.set()
        assert (await parsing).status_code == 202


@pytest.mark.parametrize(("body", "said"), [
    (b"a: " + b"[" * 5000 + b"]" * 5000, "nested more than 32 levels deep"),
    (b"id: !!python/name:os.system x\n", "YAML tags"),
    (b'a0: &a0 ["lol"]\na1: [*a0, *a0]\n', "anchors and aliases"),
    (b"\xff\xfe\x00", "not valid YAML"),
])
async def test_a_hostile_ruleset_body_gets_422_in_one_line(body, said):
    async with client(settings()) as api:
        answer = await api.post("/rules", params={"dry_run": "true"}, content=body, headers=AUTH)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert said in error
    assert "\n" not in error
    assert error.startswith("request body")


VIEWER, OPERATOR, ADMIN = ("v" * 20, "o" * 20, "a" * 20)
ROLES = SecretStr(f"wang.fang:viewer:{VIEWER}, li.wei:operator:{OPERATOR}\nzhao:admin:{ADMIN}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("tokens", "said"), [
    ("li.wei:boss:" + "x" * 20, "entry 1 is not `name:role:token`"),
    ("li wei:viewer:" + "x" * 20, "entry 1 is not `name:role:token`"),
    ("li.wei:viewer", "entry 1 is not `name:role:token`"),
    ("li.wei:viewer:short", "the token of 'li.wei' is 5 characters long"),
    (f"a:viewer:{VIEWER},b:admin:{VIEWER}", "'b' is given twice, or shares its token"),
    (f"a:viewer:{VIEWER},a:admin:{ADMIN}", "'a' is given twice"),
])
def test_named_tokens_that_would_be_ambiguous_or_weak_stop_the_api_without_showing_a_token(tokens, said):
    with pytest.raises(ApiConfigError, match=re.escape(said)) as refused:
        create_api(settings(api_token=None, api_tokens=SecretStr(tokens)))
    assert "x" * 20 not in str(refused.value)
    assert VIEWER not in str(refused.value)


async def test_each_role_may_do_what_it_is_given_and_no_more():
    async with client(settings(api_token=None, api_tokens=ROLES, api_token_for_reads=True)) as api:
        assert (await api.get("/customers/x")).status_code == 401  # reads closed: a token is needed
        pin = {"customer_id": "A", "dimension": "value", "segment": "high_value", "reason": "key account"}
        refused = await api.post("/overrides", json=pin, headers=_bearer(VIEWER))
        assert (refused.status_code, refused.json()) == (
            403, {"error": "wang.fang is a viewer: this needs the role operator"})
        refused = await api.post("/rules", params={"dry_run": "true"}, content=RETAIL, headers=_bearer(OPERATOR))
        assert (refused.status_code, refused.json()) == (
            403, {"error": "li.wei is an operator: this needs the role admin"})
        passed = await api.post("/rules", params={"dry_run": "true"}, content=RETAIL, headers=_bearer(ADMIN))
        assert passed.status_code == 202, passed.text
        forged = await api.post("/rules", params={"dry_run": "true", "author": "li.wei"}, content=RETAIL,
                                headers=_bearer(ADMIN))
        assert (forged.status_code, forged.json()["error"]) == (
            422, "a change is recorded under the token's name (zhao), not 'li.wei': leave the name out")
