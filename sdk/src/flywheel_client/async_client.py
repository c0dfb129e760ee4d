"""``AsyncFlywheelClient``: predictions over HTTP, feedback over Kafka.

``predict`` never takes longer than ``timeout_s`` in total: every attempt runs under
the time left, and a backoff (or a server's ``Retry-After``) that would cross the
deadline ends the retries early instead of sleeping past it.

With several endpoints (predictor replicas) a failed attempt moves straight on to the
next replica, without a backoff; only once every replica failed does the client wait
and start another round. Each attempt gets an equal share of the time left among the
replicas not yet tried in the round, so one hung replica cannot use up the budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig
from flywheel_client.endpoints import EndpointPool, normalise_endpoints
from flywheel_client.errors import (
    FlywheelClientError,
    NoModel,
    PlatformUnavailable,
    Unauthorized,
    ValidationRejected,
)
from flywheel_client.feedback import FeedbackPublisher, build_feedback_event
from flywheel_client.models import (
    Fallback,
    Features,
    PredictionBatch,
    PredictionResult,
    resolve_fallback,
)
from flywheel_client.retry import RetryPolicy, parse_retry_after, retryable_status

__all__ = ["DEFAULT_BASE_URL", "AsyncFlywheelClient"]

DEFAULT_BASE_URL = "http://127.0.0.1:18080"
M = TypeVar("M", bound=BaseModel)


class AsyncFlywheelClient:
    """Predict and send feedback from asyncio code.

    Use as ``async with AsyncFlywheelClient(...) as client:`` or call :meth:`start` /
    :meth:`close`. Nothing connects in the constructor; ``start`` only connects the
    feedback producer (predictions work without Kafka).
    """

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 1.0,
        retry: RetryPolicy | None = None,
        kafka: KafkaConfig | str | None = None,
        feedback_timeout_s: float = 10.0,
        source: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        endpoint_cooldown_s: float = 1.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.source = source
        # One URL, or several replicas of the predictor tried in turn (module docstring).
        self.endpoints = EndpointPool(normalise_endpoints(base_url), cooldown_s=endpoint_cooldown_s)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, transport=transport, timeout=timeout_s)
        if isinstance(kafka, str):
            kafka = KafkaConfig(bootstrap_servers=kafka, client_id="flywheel-client")
        self._feedback = (
            FeedbackPublisher(kafka, timeout_s=feedback_timeout_s) if kafka is not None else None
        )

    async def start(self) -> None:
        """Connect the feedback producer now rather than on the first ``publish_feedback``."""
        if self._feedback is not None:
            await self._feedback.start()

    async def close(self) -> None:
        try:
            if self._feedback is not None:
                await self._feedback.close()
        finally:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def predict(
        self,
        task: str,
        features: Features,
        *,
        entity_id: str | None = None,
        explain: bool = False,
        fallback: Fallback | None = None,
        timeout_s: float | None = None,
    ) -> PredictionResult:
        """One row. ``fallback`` answers instead when the platform cannot (see errors)."""
        body: dict[str, Any] = {"features": dict(features), "explain": explain}
        if entity_id is not None:
            body["entity_id"] = entity_id
        try:
            answer = await self._post(task, body, timeout_s)
            return _parse(PredictionResult, answer)
        except (PlatformUnavailable, NoModel):
            if fallback is None:
                raise
            return resolve_fallback(fallback, task, features)

    async def predict_many(
        self,
        task: str,
        rows: Sequence[Features],
        *,
        entity_id: str | None = None,
        explain: bool = False,
        fallback: Fallback | None = None,
        timeout_s: float | None = None,
    ) -> PredictionBatch:
        """Many rows in one request; the fallback, if used, answers every row."""
        if not rows:
            raise ValidationRejected("rows: at least one row is required", field="rows")
        body: dict[str, Any] = {"rows": [dict(r) for r in rows], "explain": explain}
        if entity_id is not None:
            body["entity_id"] = entity_id
        try:
            answer = await self._post(task, body, timeout_s)
            return _parse(PredictionBatch, answer)
        except (PlatformUnavailable, NoModel):
            if fallback is None:
                raise
            predictions = [resolve_fallback(fallback, task, row) for row in rows]
            return PredictionBatch(task=task, predictions=predictions, fallback=True)

    async def publish_feedback(
        self,
        task: str,
        features: Features,
        label: Any,
        *,
        prediction: PredictionResult | None = None,
        prediction_id: str | None = None,
        event_id: str | None = None,
        entity_id: str | None = None,
        source: str | None = None,
    ) -> FeedbackEvent:
        """Validate, then publish one event; returns it (its ``event_id`` identifies it)."""
        event = build_feedback_event(
            task,
            features,
            label,
            prediction=prediction,
            prediction_id=prediction_id,
            event_id=event_id,
            entity_id=entity_id,
            source=source if source is not None else self.source,
        )
        if self._feedback is None:
            raise FlywheelClientError("publish_feedback needs kafka= (bootstrap servers)")
        await self._feedback.publish(event)
        return event

    async def _post(self, task: str, body: dict[str, Any], timeout_s: float | None) -> Any:
        loop = asyncio.get_running_loop()
        budget = self.timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + budget
        path = f"/v1/tasks/{quote(task, safe='')}/predict"
        pool = self.endpoints
        attempts = 0
        why = "no attempt fitted in the time budget"
        status: int | None = None
        for round_number in range(1, self.retry.max_retries + 2):
            order = pool.order(loop.time())
            retry_after: float | None = None
            for position, endpoint in enumerate(order):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                # An equal share of the time left among the replicas still to try.
                share = remaining / (len(order) - position)
                attempts += 1
                try:
                    async with asyncio.timeout(share):
                        response = await self._http.post(endpoint + path, json=body, timeout=share)
                except (TimeoutError, httpx.TimeoutException):
                    why, status = f"{endpoint}: no answer within {share:.3g}s", None
                except httpx.TransportError as exc:
                    why, status = f"{endpoint}: connection failed: {exc!r}", None
                else:
                    if response.status_code == 200:
                        pool.answered(endpoint)
                        return response.json()
                    status = response.status_code
                    if not retryable_status(status):
                        pool.answered(endpoint)  # it answered; the request is at fault
                        raise _refusal(response)
                    why = f"{endpoint}: HTTP {status}: {_detail(response)}"
                    retry_after = parse_retry_after(response)
                pool.failed(endpoint, loop.time())
            if round_number > self.retry.max_retries or loop.time() >= deadline:
                break
            delay = self.retry.delay(round_number, retry_after)
            if loop.time() + delay >= deadline:
                why += f" (next attempt would be due after the {budget:.3g}s budget)"
                break
            await asyncio.sleep(delay)
        raise PlatformUnavailable(
            f"predict {task}: {why} after {attempts} attempt(s)", status=status, attempts=attempts
        )


def _parse(model: type[M], answer: Any) -> M:
    try:
        return model.model_validate(answer)
    except ValidationError as exc:
        raise FlywheelClientError(f"unexpected answer from the predictor: {exc}") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])
    return str(body)[:200]


def _refusal(response: httpx.Response) -> FlywheelClientError:
    """The typed error for a 4xx the caller must fix (never retried)."""
    status = response.status_code
    detail = _detail(response)
    if status in (401, 403):
        return Unauthorized(f"HTTP {status}: {detail}", status=status)
    if status == 404:
        return NoModel(f"HTTP 404: {detail}", status=status)
    if status in (400, 422):
        try:
            body = response.json()
        except ValueError:
            body = {}
        field = body.get("field") if isinstance(body, Mapping) else None
        reason = body.get("reason") if isinstance(body, Mapping) else None
        return ValidationRejected(detail, field=field, reason=reason, status=status)
    return FlywheelClientError(f"HTTP {status}: {detail}", status=status)
