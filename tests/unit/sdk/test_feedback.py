"""Feedback events are checked before anything is sent; prediction ids ride along."""

from __future__ import annotations

import time

import pytest

from flywheel_client import (
    AsyncFlywheelClient,
    FlywheelClientError,
    PlatformUnavailable,
    PredictionResult,
    ValidationRejected,
    build_feedback_event,
)

TASK = "demo.task"
ROW = {"steps": 12, "agent": "coder"}
# Nothing listens on port 1: any attempt to send would fail loudly, not pass silently.
NOWHERE = "127.0.0.1:1"


def test_the_prediction_id_is_carried_from_the_prediction() -> None:
    prediction = PredictionResult(prediction_id="p-9", task=TASK, score=0.7)
    event = build_feedback_event(TASK, ROW, True, prediction=prediction, source="svc")
    assert event.prediction_id == "p-9"
    assert event.task == TASK
    assert event.label is True
    assert event.source == "svc"
    assert len(event.event_id) == 32  # uuid4 hex by default


def test_a_fallback_prediction_carries_no_id() -> None:
    fallback = PredictionResult(task=TASK, score=0.5, fallback=True, prediction_id="made-up")
    assert build_feedback_event(TASK, ROW, True, prediction=fallback).prediction_id is None


def test_explicit_ids_are_kept() -> None:
    event = build_feedback_event(TASK, ROW, 1.5, prediction_id="p-1", event_id="e-1")
    assert (event.prediction_id, event.event_id) == ("p-1", "e-1")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task": "Not A Task!"}, "task"),
        ({"features": {"steps": float("nan")}}, "features.steps"),
        ({"features": {"bad name": 1}}, "features.bad name"),
        ({"label": float("inf")}, "label"),
        ({"event_id": "spaces are not ids"}, "event_id"),
        ({"entity_id": "x" * 200}, "entity_id"),
        ({"prediction": PredictionResult(prediction_id="p", task="other.task")}, "prediction"),
        (
            {"prediction": PredictionResult(prediction_id="p", task=TASK), "prediction_id": "q"},
            "prediction_id",
        ),
    ],
)
def test_invalid_feedback_names_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"task": TASK, "features": ROW, "label": True, **kwargs}
    with pytest.raises(ValidationRejected) as caught:
        build_feedback_event(**args)  # type: ignore[arg-type]
    assert caught.value.field is not None
    assert caught.value.field.startswith(field), caught.value


async def test_invalid_feedback_is_refused_before_connecting() -> None:
    flywheel = AsyncFlywheelClient(kafka=NOWHERE, feedback_timeout_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(ValidationRejected) as caught:
            await flywheel.publish_feedback(TASK, {"steps": float("nan")}, True)
        assert caught.value.field == "features.steps"
        assert time.monotonic() - started < 0.1
        assert flywheel._feedback is not None
        assert flywheel._feedback._producer is None
    finally:
        await flywheel.close()


async def test_unreachable_kafka_is_platform_unavailable_within_the_timeout() -> None:
    flywheel = AsyncFlywheelClient(kafka=NOWHERE, feedback_timeout_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable):
            await flywheel.publish_feedback(TASK, ROW, True)
        assert time.monotonic() - started < 1.5
    finally:
        await flywheel.close()


async def test_feedback_without_kafka_configured_is_an_error() -> None:
    async with AsyncFlywheelClient() as flywheel:
        with pytest.raises(FlywheelClientError, match="kafka"):
            await flywheel.publish_feedback(TASK, ROW, True)
