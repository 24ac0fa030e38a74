"""Redis calls retried while Redis is away (``streams.readmodel.retry``): transient refusals are retried and
counted, the others raised at once."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from streams.readmodel import retry


def test_a_call_refused_while_redis_is_away_is_retried_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.asyncio, "sleep", _no_wait)
    before = retry.RETRIES["redis_retries"]
    answers: list[Exception | str] = [redis.exceptions.ConnectionError("refused"),
                                      redis.exceptions.ResponseError("LOADING Redis is loading the dataset"), "ok"]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert asyncio.run(retry.retrying(call)) == "ok"
    assert retry.RETRIES["redis_retries"] == before + 2
    assert [s.value for s in retry.redis_retries().samples] == [before + 2]


def test_a_refusal_retrying_cannot_cure_is_raised_uncounted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.asyncio, "sleep", _no_wait)
    before = retry.RETRIES["redis_retries"]

    async def call() -> None:
        raise redis.exceptions.ResponseError("ERR increment or decrement would overflow")

    with pytest.raises(redis.exceptions.ResponseError, match="overflow"):
        asyncio.run(retry.retrying(call))
    assert retry.RETRIES["redis_retries"] == before


async def _no_wait(_: float) -> None:
    return None
