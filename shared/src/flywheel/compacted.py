"""Reading a compacted topic into memory: the latest value per key.

Used for the ``tasks`` catalog and the ``models.registry``. A reader with no consumer
group assigns every partition, reads from the beginning up to the end offsets seen at
start (so ``load`` returns a complete snapshot), and can keep following new records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from flywheel.kafka import KafkaConfig, make_consumer

__all__ = ["CompactedReader"]

log = logging.getLogger(__name__)

OnRecord = Callable[[bytes | None, bytes | None], None]


class CompactedReader:
    """Feeds every record of ``topic`` to ``on_record(key, value)``; ``value`` None = tombstone."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        on_record: OnRecord,
        *,
        read_committed: bool = True,
    ) -> None:
        self._config = config
        self._topic = topic
        self._on_record = on_record
        # False only to audit what aborted transactions left in the log (bench).
        self._read_committed = read_committed
        self._consumer: AIOKafkaConsumer | None = None
        self._follower: asyncio.Task[None] | None = None

    async def load(self) -> int:
        """Read the topic from the beginning to its current end; return records seen."""
        consumer = make_consumer(self._config, group_id=None, read_committed=self._read_committed)
        await consumer.start()
        self._consumer = consumer
        partitions = consumer.partitions_for_topic(self._topic)
        for _ in range(50):
            if partitions:
                break
            # The consumer has no metadata for a topic it neither subscribed nor was
            # assigned, and no public refresh; a just-created topic may need a moment.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(self._topic)
            if not partitions:
                await asyncio.sleep(0.1)
        partitions = partitions or set()
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return await self._read_to_end(consumer, tps)

    async def catch_up(self) -> int:
        """Apply records written since :meth:`load` up to the current end (not while following)."""
        if self._consumer is None:
            raise RuntimeError("load() first")
        if self._follower is not None:
            raise RuntimeError("catch_up() while following: the follower already applies them")
        return await self._read_to_end(self._consumer, list(self._consumer.assignment()))

    async def _read_to_end(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
        end = await consumer.end_offsets(tps)
        seen = 0
        pending = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1_000)
            for records in batches.values():
                self._apply(records)
                seen += len(records)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return seen

    def follow(self) -> None:
        """Keep applying new records in the background (call after :meth:`load`)."""
        if self._consumer is None:
            raise RuntimeError("load() first")
        self._follower = asyncio.create_task(
            self._follow(self._consumer), name=f"follow:{self._topic}"
        )

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1_000)
            for records in batches.values():
                self._apply(records)

    def _apply(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            try:
                self._on_record(record.key, record.value)
            except Exception:
                # A record this reader cannot use must not stop the others from loading.
                log.exception(
                    "skipping unreadable record",
                    extra={"topic": self._topic, "offset": record.offset},
                )

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
