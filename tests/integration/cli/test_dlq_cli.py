"""`flywheel dlq list | replay` against the real broker, in a private topic namespace."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

from flywheel import serde
from flywheel.events import DeadLetter
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.topics import FEEDBACK_DLQ, FEEDBACK_EVENTS


def _flywheel(kafka: KafkaConfig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FLYWHEEL_TOPIC_PREFIX": kafka.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "flywheel_cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _letter(kafka: KafkaConfig, reason: str, key: str, original: bytes, offset: int) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        error=f"refused: {reason}",
        field="task" if reason == "unknown_task" else None,
        original_b64=base64.b64encode(original).decode("ascii"),
        original_key=key,
        source_topic=kafka.topic(FEEDBACK_EVENTS),
        source_partition=0,
        source_offset=offset,
    )


async def _events(kafka: KafkaConfig) -> list[tuple[bytes | None, bytes | None]]:
    """Everything on the namespace's feedback.events, read without a group."""
    consumer: AIOKafkaConsumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        topic = kafka.topic(FEEDBACK_EVENTS)
        tps = [TopicPartition(topic, p) for p in range(FEEDBACK_EVENTS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=1_000)).values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def test_list_and_replay_unknown_task(kafka_namespace: KafkaConfig) -> None:
    unknown = [
        (f"task-{i}", json.dumps({"event_id": f"e{i}", "task": f"task-{i}"}).encode())
        for i in range(3)
    ]
    letters = [
        _letter(kafka_namespace, "unknown_task", key, body, i)
        for i, (key, body) in enumerate(unknown)
    ]
    letters.append(_letter(kafka_namespace, "broken_json", "task-0", b"{not json", 9))
    producer = make_producer(kafka_namespace)
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(
                kafka_namespace.topic(FEEDBACK_DLQ),
                serde.encode(letter),
                key=(letter.original_key or "").encode(),
            )
    finally:
        await producer.stop()

    listed = _flywheel(kafka_namespace, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert sorted(item["reason"] for item in shown) == ["broken_json"] + ["unknown_task"] * 3
    assert all(not item["truncated"] for item in shown)
    only = json.loads(
        _flywheel(kafka_namespace, "list", "--json", "--reason", "broken_json").stdout
    )
    assert [item["source_offset"] for item in only] == [9]

    dry = _flywheel(kafka_namespace, "replay", "--reason", "unknown_task", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would replay 3 of 3" in dry.stdout
    assert await _events(kafka_namespace) == []

    replayed = _flywheel(kafka_namespace, "replay", "--reason", "unknown_task")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 of 3" in replayed.stdout
    sent = await _events(kafka_namespace)
    assert sorted(sent) == sorted((key.encode(), body) for key, body in unknown)


def test_replay_needs_a_filter(kafka_namespace: KafkaConfig) -> None:
    result = _flywheel(kafka_namespace, "replay", "--dry-run")
    assert result.returncode == 2
    assert "--reason" in result.stderr
