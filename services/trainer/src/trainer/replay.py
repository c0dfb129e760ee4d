"""Refilling replay windows from ``training.batches`` after a restart or a rebalance.

The replay window lives in memory, but the batches it held are still in Kafka: the
ones just before a partition's committed offset were all learned already (offsets
commit in the same transaction as the versions trained on them). Reading them back
into the learners' windows, without scoring or counting them again, lets the first
window retrain after a restart see as much recent data as the one before it.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from flywheel import serde
from flywheel.errors import SerdeError
from flywheel.events import TrainingBatch

__all__ = ["recent_batches"]

log = logging.getLogger(__name__)


async def recent_batches(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    end: int,
    *,
    records: int,
    max_bytes: int,
    timeout_s: float = 15.0,
) -> list[TrainingBatch]:
    """The batches at offsets ``[end - records, end)`` of ``tp``, in order.

    ``consumer`` has no group (it is assigned ``tp`` here). Records that do not decode
    are skipped: they went to ``feedback.dlq`` when they were first read.
    """
    beginning = (await consumer.beginning_offsets([tp]))[tp]
    start = max(beginning, end - records)
    if start >= end:
        return []
    consumer.assign([tp])
    consumer.seek(tp, start)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    out: list[TrainingBatch] = []
    while await consumer.position(tp) < end:
        if loop.time() > deadline:
            log.warning("replay window refill timed out", extra={"partition": tp.partition})
            break
        polled = await consumer.getmany(tp, timeout_ms=500)
        for record in polled.get(tp, []):
            if record.offset >= end or record.value is None:
                continue
            try:
                out.append(serde.decode(TrainingBatch, record.value, max_bytes=max_bytes))
            except SerdeError:
                continue
    return out
