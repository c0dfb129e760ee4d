"""Assigning a group-less consumer every partition of a topic (each replica reads all)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from flywheel.errors import DependencyUnavailable

__all__ = ["assign_all_partitions"]


async def assign_all_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, timeout_s: float = 10.0
) -> list[TopicPartition]:
    """Assign ``consumer`` (started, no group) all partitions of ``topic`` and return them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    partitions = consumer.partitions_for_topic(topic)
    while not partitions:
        # A consumer has no metadata for a topic it was never assigned, and aiokafka
        # offers no public refresh (same approach as flywheel.compacted).
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            break
        if loop.time() > deadline:
            raise DependencyUnavailable(f"topic {topic} has no partitions (does it exist?)")
        await asyncio.sleep(0.1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps
