"""The shared Kafka helpers against the real local broker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from uuid import uuid4

import pytest

from flywheel import serde
from flywheel.errors import EventValidationError, SerdeError
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.topics import FEEDBACK_EVENTS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _event(i: int) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"evt-{i:06d}",
        task="daisy-chain.task-success",
        features={"steps": i, "retries": 0.5, "agent": "planner"},
        label=i % 2 == 0,
        source="tests",
    )


async def _consume(config: KafkaConfig, topic: str, count: int) -> list[bytes]:
    consumer = make_consumer(config, topic, group_id=f"g-{uuid4().hex}")
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(r.value or b"" for r in records)
    finally:
        await consumer.stop()
    return values


async def test_feedback_event_round_trips(kafka: KafkaConfig) -> None:
    topic = kafka.topic(FEEDBACK_EVENTS)
    sent = [_event(i) for i in range(20)]
    producer = make_producer(kafka)
    await producer.start()
    try:
        for event in sent:
            await producer.send_and_wait(topic, serde.encode(event), key=event.task.encode())
    finally:
        await producer.stop()
    received = [serde.decode(FeedbackEvent, v) for v in await _consume(kafka, topic, len(sent))]
    # One key means one partition, so order is kept too.
    assert received == sent


async def test_malformed_payload_gives_a_typed_error_naming_the_field(kafka: KafkaConfig) -> None:
    topic = kafka.topic(FEEDBACK_EVENTS)
    bad = serde.encode(_event(1)).replace(b'"steps":1', b'"steps":[1]')
    producer = make_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topic, bad, key=b"daisy-chain.task-success")
        await producer.send_and_wait(topic, b'{"event_id": ', key=b"daisy-chain.task-success")
    finally:
        await producer.stop()
    wrong_type, broken = await _consume(kafka, topic, 2)
    with pytest.raises(EventValidationError) as info:
        serde.decode(FeedbackEvent, wrong_type)
    assert info.value.field == "features.steps"
    with pytest.raises(SerdeError) as broken_info:
        serde.decode(FeedbackEvent, broken)
    assert broken_info.value.reason == "broken_json"


@pytest.mark.slow
async def test_killed_manual_commit_consumer_loses_nothing(
    kafka: KafkaConfig, tmp_path: Path
) -> None:
    total = 3_000
    topic = kafka.topic(FEEDBACK_EVENTS)
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, serde.encode(_event(i)), key=f"task-{i % 6}".encode())
            for i in range(total)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    sink = tmp_path / "sink.txt"
    group = f"audit-{uuid4().hex}"
    command = [
        sys.executable,
        "-m",
        "tests.integration.shared._audit_consumer",
        kafka.bootstrap_servers,
        topic,
        group,
        str(sink),
    ]

    def seen() -> list[str]:
        return sink.read_text().split() if sink.exists() else []

    kills = 0
    for target in (total // 4, total // 2):
        worker = subprocess.Popen(command, cwd=REPO)
        try:
            async with asyncio.timeout(60):
                while len(seen()) < target:
                    await asyncio.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        kills += 1

    worker = subprocess.Popen(command, cwd=REPO)
    try:
        async with asyncio.timeout(90):
            while len(set(seen())) < total:
                await asyncio.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(10)

    counts = Counter(seen())
    expected = {f"evt-{i:06d}" for i in range(total)}
    assert kills == 2
    assert expected - set(counts) == set(), "events lost across SIGKILL"
    assert set(counts) - expected == set()
    # At-least-once below the durable sink: a kill may replay only what was written
    # but not yet committed — at most one poll (50 records per partition) per kill.
    redelivered = sum(c - 1 for c in counts.values())
    assert redelivered <= kills * 50 * 6
