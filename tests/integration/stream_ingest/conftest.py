"""stream-ingest integration fixtures: a private namespace, tasks, publishing, reading back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from flywheel import serde
from flywheel.catalog import apply_tasks
from flywheel.events import DeadLetter, TrainingBatch
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.tasks import TaskDefinition
from flywheel.topics import FEEDBACK_DLQ, FEEDBACK_EVENTS, TRAINING_BATCHES, TopicSpec
from stream_ingest.changelog import DEDUP_CHANGELOG
from stream_ingest.config import Settings
from stream_ingest.service import StreamIngest


def task_definition(name: str, *, max_events: int = 500, max_age_s: float = 2.0) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "name": name,
            "objective": "binary",
            "label": {"type": "bool"},
            "features": [
                {"name": "steps", "type": "int"},
                {"name": "retries", "type": "float"},
                {"name": "agent", "type": "category"},
            ],
            "flush": {"max_events": max_events, "max_age_s": max_age_s},
        }
    )


def feedback(event_id: str, task: str, *, steps: object = 3, label: object = True) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "task": task,
            "features": {"steps": steps, "retries": 0.5, "agent": "planner"},
            "label": label,
        }
    )


@pytest.fixture
async def namespace(kafka_namespace: KafkaConfig) -> AsyncIterator[KafkaConfig]:
    """The shared private namespace, plus stream-ingest's own changelog topic (removed after)."""
    yield kafka_namespace
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_namespace.bootstrap_servers)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics([kafka_namespace.topic(DEDUP_CHANGELOG)])
    finally:
        await admin.close()


@dataclass
class Ingest:
    """Helpers bound to one namespace."""

    config: KafkaConfig
    services: list[StreamIngest] = field(default_factory=list)

    def settings(self, **overrides: object) -> Settings:
        return Settings(
            kafka_bootstrap_servers=self.config.bootstrap_servers,
            topic_prefix=self.config.topic_prefix,
            startup_timeout_s=20,
            **overrides,  # type: ignore[arg-type]
        )

    async def apply(self, *tasks: TaskDefinition) -> None:
        await apply_tasks(self.config, list(tasks))

    async def publish(self, records: list[tuple[bytes | None, bytes | None]]) -> None:
        producer = make_producer(self.config)
        await producer.start()
        try:
            topic = self.config.topic(FEEDBACK_EVENTS)
            for key, value in records:
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    async def read(self, spec: TopicSpec) -> list[tuple[bytes | None, bytes]]:
        """Every committed record of ``spec`` right now (read_committed, all partitions)."""
        consumer = make_consumer(self.config, group_id=None, read_committed=True)
        await consumer.start()
        try:
            topic = self.config.topic(spec)
            tps = [TopicPartition(topic, p) for p in range(spec.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            out: list[tuple[bytes | None, bytes]] = []
            pending = {tp for tp in tps if end[tp] > 0}
            while pending:
                for records in (await consumer.getmany(*pending, timeout_ms=500)).values():
                    out += [(r.key, r.value) for r in records if r.value is not None]
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
            return out
        finally:
            await consumer.stop()

    async def batches(self) -> list[TrainingBatch]:
        return [
            serde.decode(TrainingBatch, v, max_bytes=2_000_000)
            for _, v in await self.read(TRAINING_BATCHES)
        ]

    async def read_batches_raw(self) -> list[bytes]:
        return [v for _, v in await self.read(TRAINING_BATCHES)]

    async def dead_letters(self) -> list[DeadLetter]:
        return [
            serde.decode(DeadLetter, v, max_bytes=2_000_000)
            for _, v in await self.read(FEEDBACK_DLQ)
        ]

    async def until(self, probe: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not await probe():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout_s}s")
            await asyncio.sleep(0.3)

    @contextlib.asynccontextmanager
    async def running(self, **overrides: object) -> AsyncIterator[StreamIngest]:
        """An in-process stream-ingest (no HTTP port) for the duration of the block."""
        wrap_writer = overrides.pop("wrap_writer", None)
        service = StreamIngest(
            self.settings(**overrides),
            serve_http=False,
            wrap_writer=wrap_writer,  # type: ignore[arg-type]
        )
        await service.start()
        runner = asyncio.create_task(service.run())
        try:
            yield service
        finally:
            await service.stop()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


@pytest.fixture
def ingest(namespace: KafkaConfig) -> Ingest:
    return Ingest(namespace)
