"""The SDK against a live predictor and the real Kafka: predictions, typed refusals,
fallbacks, and feedback landing on ``feedback.events`` with its prediction_id."""

from __future__ import annotations

import asyncio
import socket

import pytest

from flywheel import serde
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, make_consumer
from flywheel.topics import FEEDBACK_EVENTS
from flywheel_client import (
    AsyncFlywheelClient,
    FlywheelClient,
    NoModel,
    PlatformUnavailable,
    ValidationRejected,
)
from predictor.partitions import assign_all_partitions
from tests.integration.predictor.conftest import ModelPublisher, StartService
from tests.unit.predictor.modelkit import ROW, train_version

TASK = "demo.task"
Record = tuple[bytes | None, bytes]


async def _feedback_records(kafka: KafkaConfig, want: int, timeout_s: float = 15) -> list[Record]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        await assign_all_partitions(consumer, kafka.topic(FEEDBACK_EVENTS))
        await consumer.seek_to_beginning()
        records: list[Record] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < want and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            records.extend((r.key, r.value) for rs in batches.values() for r in rs)
        return records
    finally:
        await consumer.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_predict_then_feedback_carries_the_prediction_id(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1))
    service = await start_service()
    base_url = f"http://127.0.0.1:{service.port}"
    async with AsyncFlywheelClient(
        base_url, kafka=kafka_namespace, timeout_s=5, source="sdk-test"
    ) as flywheel:
        result = await flywheel.predict(TASK, ROW, explain=True)
        assert result.prediction_id
        assert (result.task, result.model_version, result.fallback) == (TASK, 1, False)
        assert isinstance(result.score, float)
        assert result.confidence is not None
        assert result.contributions is not None
        assert "bias" in result.contributions

        batch = await flywheel.predict_many(TASK, [ROW, {**ROW, "steps": 30}])
        assert len(batch.predictions) == 2
        assert len({p.prediction_id for p in batch.predictions}) == 2

        with pytest.raises(ValidationRejected) as refused:
            await flywheel.predict(TASK, {**ROW, "steps": "many"})
        assert refused.value.field == "features.steps"
        with pytest.raises(NoModel):
            await flywheel.predict("no.such.task", ROW)

        sent = await flywheel.publish_feedback(TASK, ROW, True, prediction=result)
        assert sent.prediction_id == result.prediction_id

    records = await _feedback_records(kafka_namespace, want=1)
    assert len(records) == 1
    key, value = records[0]
    assert key == TASK.encode()
    landed = serde.decode(FeedbackEvent, value)
    assert landed == sent
    assert landed.source == "sdk-test"


async def test_sync_client_predicts_and_publishes(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1))
    service = await start_service()

    # The predictor runs on this test's loop: the blocking client must run off it.
    def integrate() -> tuple[str | None, FeedbackEvent]:
        with FlywheelClient(
            f"http://127.0.0.1:{service.port}", kafka=kafka_namespace, timeout_s=5
        ) as flywheel:
            result = flywheel.predict(TASK, ROW)
            event = flywheel.publish_feedback(TASK, ROW, False, prediction=result)
            return result.prediction_id, event

    prediction_id, event = await asyncio.to_thread(integrate)
    assert prediction_id is not None
    assert event.prediction_id == prediction_id
    records = await _feedback_records(kafka_namespace, want=1)
    assert [serde.decode(FeedbackEvent, v).event_id for _, v in records] == [event.event_id]


async def test_fallback_when_the_predictor_is_down() -> None:
    async with AsyncFlywheelClient(f"http://127.0.0.1:{_closed_port()}", timeout_s=0.5) as fw:
        result = await fw.predict(TASK, ROW, fallback=lambda features: {"score": 0.5})
        assert (result.fallback, result.score, result.prediction_id) == (True, 0.5, None)
        with pytest.raises(PlatformUnavailable):
            await fw.predict(TASK, ROW)
