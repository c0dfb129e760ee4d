"""Feedback events: built and checked locally, then published to ``feedback.events``.

The event is validated (the same :class:`flywheel.events.FeedbackEvent` stream-ingest
reads) before anything touches the network, so a wrong field fails in the caller
with its name. Publishing uses the library's idempotent ``acks=all`` producer, key =
task, so one task's feedback stays ordered on one partition.

Delivery is at-least-once from the caller's point of view: if ``publish`` times out
the record may still have been written; publishing again with the same ``event_id``
is safe because stream-ingest de-duplicates by ``event_id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from flywheel import serde
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.topics import FEEDBACK_EVENTS
from flywheel_client.errors import PlatformUnavailable, ValidationRejected
from flywheel_client.models import PredictionResult

__all__ = ["FeedbackPublisher", "build_feedback_event"]


def build_feedback_event(
    task: str,
    features: Mapping[str, Any],
    label: Any,
    *,
    prediction: PredictionResult | None = None,
    prediction_id: str | None = None,
    event_id: str | None = None,
    entity_id: str | None = None,
    source: str | None = None,
) -> FeedbackEvent:
    """A valid :class:`FeedbackEvent`, or :class:`ValidationRejected` naming the field."""
    if prediction is not None:
        if prediction.task is not None and prediction.task != task:
            raise ValidationRejected(
                f"prediction: made for task {prediction.task!r}, not {task!r}",
                field="prediction",
                reason="task_mismatch",
            )
        carried = None if prediction.fallback else prediction.prediction_id
        if prediction_id is not None and carried is not None and prediction_id != carried:
            raise ValidationRejected(
                "prediction_id: differs from the given prediction's",
                field="prediction_id",
                reason="conflict",
            )
        prediction_id = prediction_id or carried
    try:
        return FeedbackEvent(
            event_id=event_id if event_id is not None else uuid4().hex,
            task=task,
            features=dict(features),
            label=label,
            prediction_id=prediction_id,
            entity_id=entity_id,
            source=source,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p != "[key]") or "<root>"
        raise ValidationRejected(
            f"{field}: {first['msg']}", field=field, reason="invalid_field"
        ) from exc


class FeedbackPublisher:
    """Owns one producer, started on first use (or by :meth:`start`)."""

    def __init__(self, kafka: KafkaConfig, *, timeout_s: float = 10.0) -> None:
        self._kafka = kafka
        self._topic = kafka.topic(FEEDBACK_EVENTS)
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._producer is not None:
                return
            producer = make_producer(self._kafka)
            try:
                async with asyncio.timeout(self._timeout_s):
                    await producer.start()
            except (TimeoutError, KafkaError, OSError) as exc:
                await producer.stop()
                raise PlatformUnavailable(
                    f"Kafka at {self._kafka.bootstrap_servers} did not answer: {exc!r}"
                ) from exc
            self._producer = producer

    async def publish(self, event: FeedbackEvent) -> None:
        await self.start()
        assert self._producer is not None
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._producer.send_and_wait(
                    self._topic, serde.encode(event), key=event.task.encode()
                )
        except (TimeoutError, KafkaError) as exc:
            raise PlatformUnavailable(
                f"feedback {event.event_id} not acknowledged within {self._timeout_s}s "
                f"(publish it again with the same event_id): {exc!r}"
            ) from exc

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
