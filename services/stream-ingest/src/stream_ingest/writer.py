"""Committing a partition's flush: batches, dead letters, changelog and offset in one transaction.

One transactional producer per source partition, with the id ``<stem>.<partition>``:
the same on every replica and after every restart, so whoever takes over a partition
fences the previous owner (a SIGKILLed or stalled "zombie") and aborts its open
transaction before reading the committed offset. This is Kafka's classic
exactly-once recipe; aiokafka's ``send_offsets_to_transaction`` takes only a group id
(not the KIP-447 group metadata), which is why one producer per partition is needed.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaProducer, TopicPartition

from flywheel.kafka import KafkaConfig, make_producer
from stream_ingest.buffers import Flush
from stream_ingest.changelog import encode_ids

__all__ = ["FlushWriter", "KafkaFlushWriter"]


class FlushWriter(Protocol):
    """Where flushes go; the Kafka one below, or an in-memory fake in unit tests."""

    async def open(self, partition: int) -> None: ...

    async def commit(self, flush: Flush) -> None: ...

    async def close(self, partition: int) -> None: ...

    async def close_all(self) -> None: ...


class KafkaFlushWriter:
    def __init__(
        self,
        config: KafkaConfig,
        *,
        transactional_id_stem: str,
        group_id: str,
        source_topic: str,
        batches_topic: str,
        dlq_topic: str,
        changelog_topic: str,
    ) -> None:
        self._config = config
        self._stem = config.scoped(transactional_id_stem)
        self._group_id = group_id
        self._source_topic = source_topic
        self._batches_topic = batches_topic
        self._dlq_topic = dlq_topic
        self._changelog_topic = changelog_topic
        self._producers: dict[int, AIOKafkaProducer] = {}

    def transactional_id(self, partition: int) -> str:
        return f"{self._stem}.{partition}"

    async def open(self, partition: int) -> None:
        """Start (and thereby fence any other holder of) this partition's producer."""
        if partition in self._producers:
            return
        producer = make_producer(
            self._config, transactional_id=self.transactional_id(partition), linger_ms=2
        )
        await producer.start()  # InitProducerId: bumps the epoch, aborts the zombie's txn
        self._producers[partition] = producer

    async def commit(self, flush: Flush) -> None:
        producer = self._producers[flush.partition]
        async with producer.transaction():
            sends = [
                await producer.send(self._batches_topic, record.value, key=record.key)
                for record in flush.batches
            ]
            sends += [
                await producer.send(self._dlq_topic, record.value, key=record.key)
                for record in flush.dead_letters
            ]
            key = str(flush.partition).encode()
            sends += [
                await producer.send(
                    self._changelog_topic, value, key=key, partition=flush.partition
                )
                for value in encode_ids(flush.accepted_ids)
            ]
            await asyncio.gather(*sends)
            await producer.send_offsets_to_transaction(
                {TopicPartition(self._source_topic, flush.partition): flush.next_offset},
                self._group_id,
            )

    async def close(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            await producer.stop()

    async def close_all(self) -> None:
        for partition in list(self._producers):
            await self.close(partition)
