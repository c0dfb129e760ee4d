"""Reading a service's heartbeats back from a namespace's ``services.heartbeats``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import TopicPartition

from flywheel import serde
from flywheel.events import Heartbeat
from flywheel.kafka import KafkaConfig, make_consumer
from flywheel.topics import HEARTBEATS


async def wait_for_heartbeat(
    kafka: KafkaConfig,
    service: str,
    condition: Callable[[Heartbeat], bool] = lambda _: True,
    *,
    timeout_s: float = 20.0,
) -> Heartbeat:
    """The first heartbeat of ``service`` (read from the beginning) that meets ``condition``."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        topic = kafka.topic(HEARTBEATS)
        consumer.assign([TopicPartition(topic, p) for p in range(HEARTBEATS.partitions)])
        await consumer.seek_to_beginning()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        seen: list[Heartbeat] = []
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    beat = serde.decode(Heartbeat, record.value or b"")
                    if beat.service != service:
                        continue
                    seen.append(beat)
                    if condition(beat):
                        return beat
        raise AssertionError(f"no matching {service} heartbeat in {timeout_s}s; saw {seen[-3:]}")
    finally:
        await consumer.stop()
