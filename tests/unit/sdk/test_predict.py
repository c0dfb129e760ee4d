"""predict / predict_many against a fake predictor (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from flywheel_client import (
    AsyncFlywheelClient,
    FlywheelClient,
    NoModel,
    PlatformUnavailable,
    PredictionResult,
    RetryPolicy,
    Unauthorized,
    ValidationRejected,
)
from flywheel_client.retry import parse_retry_after

TASK = "demo.task"
ROW = {"steps": 12, "agent": "coder"}
ANSWER = {
    "prediction_id": "p-1",
    "task": TASK,
    "model_version": 3,
    "score": 0.8,
    "probability": 0.75,
    "label": True,
    "confidence": 0.75,
    "cached": False,
}
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.001, backoff_max_s=0.002)

Handler = Callable[[httpx.Request], Any]


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering each request with the next response (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def client(handler: Handler, **kwargs: Any) -> AsyncFlywheelClient:
    kwargs.setdefault("retry", FAST)
    return AsyncFlywheelClient(transport=httpx.MockTransport(handler), **kwargs)


async def test_predict_returns_a_typed_result_and_sends_the_contract_body() -> None:
    handler, seen = scripted(httpx.Response(200, json={**ANSWER, "new_field": 1}))
    async with client(handler, api_key="k3y") as flywheel:
        result = await flywheel.predict(TASK, ROW, entity_id="user-1", explain=True)
    assert result.prediction_id == "p-1"
    assert result.model_version == 3
    assert result.score == 0.8
    assert result.confidence == 0.75
    assert result.fallback is False
    assert result.model_extra == {"new_field": 1}  # fields may be added by the server
    (request,) = seen
    assert request.url.path == f"/v1/tasks/{TASK}/predict"
    assert request.headers["authorization"] == "Bearer k3y"
    assert json.loads(request.content) == {"features": ROW, "explain": True, "entity_id": "user-1"}


async def test_predict_many_returns_one_result_per_row() -> None:
    body = {"task": TASK, "model_version": 3, "predictions": [ANSWER, {**ANSWER, "score": 0.1}]}
    handler, _ = scripted(httpx.Response(200, json=body))
    async with client(handler) as flywheel:
        batch = await flywheel.predict_many(TASK, [ROW, ROW])
    assert [p.score for p in batch.predictions] == [0.8, 0.1]
    assert batch.model_version == 3


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_5xx_and_429_are_retried(status: int) -> None:
    handler, seen = scripted(httpx.Response(status), httpx.Response(200, json=ANSWER))
    async with client(handler) as flywheel:
        assert (await flywheel.predict(TASK, ROW)).prediction_id == "p-1"
    assert len(seen) == 2


async def test_connection_errors_are_retried() -> None:
    handler, seen = scripted(httpx.ConnectError("refused"), httpx.Response(200, json=ANSWER))
    async with client(handler) as flywheel:
        assert (await flywheel.predict(TASK, ROW)).prediction_id == "p-1"
    assert len(seen) == 2


async def test_retries_are_bounded() -> None:
    handler, seen = scripted(httpx.Response(503))
    async with client(handler, timeout_s=5) as flywheel:
        with pytest.raises(PlatformUnavailable) as caught:
            await flywheel.predict(TASK, ROW)
    assert len(seen) == 4  # first attempt + max_retries
    assert caught.value.attempts == 4
    assert caught.value.status == 503


@pytest.mark.parametrize(
    ("status", "error"), [(401, Unauthorized), (403, Unauthorized), (404, NoModel)]
)
async def test_4xx_is_never_retried_and_is_typed(status: int, error: type[Exception]) -> None:
    handler, seen = scripted(httpx.Response(status, json={"detail": "no"}))
    async with client(handler) as flywheel:
        with pytest.raises(error):
            await flywheel.predict(TASK, ROW)
    assert len(seen) == 1


async def test_422_names_the_field() -> None:
    refusal = {"detail": "features.steps: missing", "field": "features.steps", "reason": "missing"}
    handler, seen = scripted(httpx.Response(422, json=refusal))
    async with client(handler) as flywheel:
        with pytest.raises(ValidationRejected) as caught:
            await flywheel.predict(TASK, ROW, fallback=0.5)  # a caller bug: no fallback
    assert caught.value.field == "features.steps"
    assert caught.value.reason == "missing"
    assert caught.value.status == 422
    assert len(seen) == 1


async def test_the_total_timeout_is_never_exceeded_even_with_retries() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=ANSWER)

    async with client(slow, timeout_s=0.2, retry=RetryPolicy(max_retries=5)) as flywheel:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable, match="no answer"):
            await flywheel.predict(TASK, ROW)
        elapsed = time.monotonic() - started
    # The slack is scheduling on a busy machine, not another attempt (each is 5 s).
    assert elapsed < 0.2 + 0.15


async def test_retry_after_is_honoured() -> None:
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json=ANSWER)
    )
    async with client(handler, timeout_s=3) as flywheel:
        started = time.monotonic()
        await flywheel.predict(TASK, ROW)
    assert 0.95 <= time.monotonic() - started < 2
    assert len(seen) == 2


async def test_a_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    handler, seen = scripted(httpx.Response(503, headers={"Retry-After": "30"}))
    async with client(handler, timeout_s=1) as flywheel:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable, match="budget"):
            await flywheel.predict(TASK, ROW)
    assert time.monotonic() - started < 0.5
    assert len(seen) == 1


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    response = httpx.Response(503, headers={"Retry-After": later})
    assert parse_retry_after(response, now=now) == 7
    assert parse_retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Response(503, headers={"Retry-After": "0.25"})) == 0.25
    assert parse_retry_after(httpx.Response(503)) is None


async def test_fallback_value_when_the_platform_is_down() -> None:
    handler, _ = scripted(httpx.ConnectError("refused"))
    async with client(handler) as flywheel:
        result = await flywheel.predict(TASK, ROW, fallback=0.5)
    assert result.fallback is True
    assert result.score == 0.5
    assert result.prediction_id is None
    assert result.task == TASK


async def test_a_bool_fallback_is_the_label() -> None:
    handler, _ = scripted(httpx.Response(502))
    async with client(handler) as flywheel:
        result = await flywheel.predict(TASK, ROW, fallback=False)
    assert (result.label, result.score, result.fallback) == (False, None, True)


async def test_fallback_callable_sees_the_features_and_covers_no_model() -> None:
    handler, _ = scripted(httpx.Response(404, json={"detail": "no model"}))

    def rule(features: Any) -> dict[str, Any]:
        return {"label": features["steps"] > 10, "confidence": 0.6}

    async with client(handler) as flywheel:
        result = await flywheel.predict(TASK, ROW, fallback=rule)
        batch = await flywheel.predict_many(TASK, [ROW, {"steps": 1}], fallback=rule)
    assert (result.label, result.confidence, result.fallback) == (True, 0.6, True)
    assert batch.fallback is True
    assert [p.label for p in batch.predictions] == [True, False]


async def test_fallback_when_the_budget_runs_out() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=ANSWER)

    default = PredictionResult(score=0.1, label=False)
    async with client(slow, timeout_s=0.1) as flywheel:
        started = time.monotonic()
        result = await flywheel.predict(TASK, ROW, fallback=default)
    assert time.monotonic() - started < 0.2
    assert result.fallback is True
    assert result.score == 0.1


async def test_per_call_timeout_overrides_the_client_default() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=ANSWER)

    async with client(slow, timeout_s=10) as flywheel:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable):
            await flywheel.predict(TASK, ROW, timeout_s=0.05)
    assert time.monotonic() - started < 0.15


async def test_predict_many_refuses_no_rows() -> None:
    handler, seen = scripted(httpx.Response(200, json=ANSWER))
    async with client(handler) as flywheel:
        with pytest.raises(ValidationRejected) as caught:
            await flywheel.predict_many(TASK, [])
    assert caught.value.field == "rows"
    assert seen == []


def test_sync_client_shares_the_semantics() -> None:
    handler, seen = scripted(httpx.Response(503), httpx.Response(200, json=ANSWER))
    with FlywheelClient(transport=httpx.MockTransport(handler), retry=FAST) as flywheel:
        assert flywheel.predict(TASK, ROW).prediction_id == "p-1"
        assert flywheel.predict(TASK, ROW).prediction_id == "p-1"
    assert len(seen) == 3


def test_sync_client_timeout_and_fallback() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with FlywheelClient(transport=httpx.MockTransport(slow), timeout_s=0.2, retry=FAST) as fw:
        assert fw.predict(TASK, ROW, fallback=lambda f: 0.3).score == 0.3
        with pytest.raises(PlatformUnavailable):
            fw.predict_many(TASK, [ROW])


def test_sync_client_refuses_calls_after_close() -> None:
    flywheel = FlywheelClient()
    flywheel.close()
    flywheel.close()
    with pytest.raises(RuntimeError, match="closed"):
        flywheel.predict(TASK, ROW)
