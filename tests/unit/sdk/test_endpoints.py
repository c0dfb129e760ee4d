"""Several predictor endpoints: fail over within the budget, spread calls, skip the failed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from flywheel_client import AsyncFlywheelClient, FlywheelClient, NoModel, PlatformUnavailable
from flywheel_client.endpoints import EndpointPool, normalise_endpoints
from tests.unit.sdk.test_predict import ANSWER, FAST, ROW, TASK

A, B = "http://127.0.0.1:18080", "http://127.0.0.1:18180"


class Replicas:
    """A MockTransport handler answering per host: a status, an exception, or a hang."""

    def __init__(self, **behaviour: int | Exception | float) -> None:
        self.behaviour = behaviour  # keyed by port, e.g. p18080=503
        self.seen: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        self.seen.append(endpoint)
        answer = self.behaviour.get(f"p{request.url.port}", 200)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, float):
            await asyncio.sleep(answer)  # a hung replica
            answer = 200
        body: dict[str, Any] = ANSWER if answer == 200 else {"detail": f"status {answer}"}
        return httpx.Response(answer, json=body)


def client(replicas: Replicas, **kwargs: Any) -> AsyncFlywheelClient:
    kwargs.setdefault("retry", FAST)
    return AsyncFlywheelClient([A, B], transport=httpx.MockTransport(replicas), **kwargs)


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), 503, 500, 429], ids=["refused", "503", "500", "429"]
)
async def test_a_failed_replica_is_skipped_at_once_for_the_next(failure: Any) -> None:
    replicas = Replicas(p18080=failure)
    async with client(replicas) as flywheel:
        started = time.monotonic()
        result = await flywheel.predict(TASK, ROW)
    assert result.prediction_id == ANSWER["prediction_id"]
    assert replicas.seen == [A, B]
    assert time.monotonic() - started < 0.5  # no backoff between replicas


async def test_a_refusal_is_final_and_never_asked_of_another_replica() -> None:
    replicas = Replicas(p18080=404)
    async with client(replicas) as flywheel:
        with pytest.raises(NoModel):
            await flywheel.predict(TASK, ROW)
    assert replicas.seen == [A]


async def test_calls_alternate_between_healthy_replicas() -> None:
    replicas = Replicas()
    async with client(replicas) as flywheel:
        for _ in range(4):
            await flywheel.predict(TASK, ROW)
    assert replicas.seen == [A, B, A, B]


async def test_a_failed_replica_goes_last_until_its_cooldown_ends() -> None:
    replicas = Replicas(p18080=httpx.ConnectError("refused"))
    async with client(replicas, endpoint_cooldown_s=0.2) as flywheel:
        await flywheel.predict(TASK, ROW)  # A fails, B answers
        await flywheel.predict(TASK, ROW)  # would start with B anyway (round-robin)
        await flywheel.predict(TASK, ROW)  # A's turn, but A is cooling: B first
        assert replicas.seen == [A, B, B, B]
        await asyncio.sleep(0.25)
        replicas.behaviour.clear()
        await flywheel.predict(TASK, ROW)
        await flywheel.predict(TASK, ROW)
    assert replicas.seen[4:] == [B, A] or replicas.seen[4:] == [A, B]


async def test_a_hung_replica_gets_only_its_share_of_the_budget() -> None:
    replicas = Replicas(p18080=5.0)
    async with client(replicas, timeout_s=0.6) as flywheel:
        started = time.monotonic()
        result = await flywheel.predict(TASK, ROW)
        elapsed = time.monotonic() - started
    assert result.prediction_id == ANSWER["prediction_id"]
    assert replicas.seen == [A, B]
    assert 0.25 < elapsed < 0.6  # A had half the budget, B answered in the other half


async def test_every_replica_down_is_unavailable_after_bounded_rounds() -> None:
    replicas = Replicas(p18080=503, p18180=httpx.ConnectError("refused"))
    async with client(replicas) as flywheel:
        with pytest.raises(PlatformUnavailable) as caught:
            await flywheel.predict(TASK, ROW)
    rounds = FAST.max_retries + 1
    assert caught.value.attempts == 2 * rounds == len(replicas.seen)
    assert "18180" in str(caught.value) or "18080" in str(caught.value)


def test_the_blocking_client_takes_endpoints_too() -> None:
    replicas = Replicas(p18080=httpx.ConnectError("refused"))
    with FlywheelClient([A, B], transport=httpx.MockTransport(replicas), retry=FAST) as flywheel:
        assert flywheel.predict(TASK, ROW).prediction_id == ANSWER["prediction_id"]
    assert replicas.seen == [A, B]


@pytest.mark.parametrize(
    ("base_url", "named"),
    [
        ([], "base_url: at least one"),
        (["ftp://host:1"], "base_url[0]"),
        ([A, "localhost:8080"], "base_url[1]"),
        ([A, A + "/"], "listed twice"),
        ("nope", "base_url: 'nope'"),
    ],
)
def test_bad_endpoints_are_refused_by_position(base_url: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        normalise_endpoints(base_url)


def test_one_url_keeps_working_as_before() -> None:
    assert normalise_endpoints("http://h:1/") == ("http://h:1",)
    pool = EndpointPool(["x"], cooldown_s=1.0)
    pool.failed("x", now=0.0)
    assert pool.order(now=0.5) == ["x"]  # the only endpoint is tried even while cooling
