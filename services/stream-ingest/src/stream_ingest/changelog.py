"""The dedup changelog: accepted event ids, written in the same transaction as the batches.

Partition ``p`` of the changelog holds the ids accepted from partition ``p`` of
``feedback.events``. Because a changelog record commits atomically with the batches
and the consumer offset, restoring a partition's window from its changelog (read
committed) yields exactly the ids that were counted, no matter where a crash hit.
Only the tail is read back: chunks are read from the end towards the beginning until
the window is full.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from flywheel.topics import FEEDBACK_EVENTS, TopicSpec
from stream_ingest.dedup import DedupWindow

__all__ = ["DEDUP_CHANGELOG", "encode_ids", "restore_window"]

# Owned by stream-ingest, created at start-up beside Flywheel's topics. Same partition
# count as feedback.events: source partition p writes changelog partition p.
DEDUP_CHANGELOG = TopicSpec(
    "stream-ingest.dedup-changelog",
    FEEDBACK_EVENTS.partitions,
    description="Event ids accepted by stream-ingest, per feedback.events partition.",
)
IDS_PER_RECORD = 4_000  # 4,000 ids of at most 128 chars stay well under 1 MB
RESTORE_CHUNK = 256  # records read back per step when refilling a window


def encode_ids(event_ids: list[str]) -> Iterator[bytes]:
    for start in range(0, len(event_ids), IDS_PER_RECORD):
        yield orjson.dumps(event_ids[start : start + IDS_PER_RECORD])


async def restore_window(
    consumer: AIOKafkaConsumer, tp: TopicPartition, capacity: int
) -> DedupWindow:
    """A window holding the newest ``capacity`` ids of changelog partition ``tp``.

    ``consumer`` has no group and reads committed records only; it is re-assigned here.
    """
    window = DedupWindow(capacity)
    consumer.assign([tp])
    begin = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    chunks: list[list[str]] = []
    total = 0
    hi = end
    while hi > begin and total < capacity:
        lo = max(begin, hi - RESTORE_CHUNK)
        ids = await _read_range(consumer, tp, lo, hi)
        chunks.append(ids)
        total += len(ids)
        hi = lo
    for ids in reversed(chunks):
        window.extend(ids)
    return window


async def _read_range(
    consumer: AIOKafkaConsumer, tp: TopicPartition, lo: int, hi: int
) -> list[str]:
    consumer.seek(tp, lo)
    ids: list[str] = []
    while await consumer.position(tp) < hi:
        records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
        for record in records:
            if record.offset >= hi:
                return ids
            if record.value:
                ids.extend(orjson.loads(record.value))
    return ids
