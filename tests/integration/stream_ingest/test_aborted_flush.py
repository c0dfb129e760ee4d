"""A flush transaction that fails half-way is aborted and replayed: nothing counted twice."""

from __future__ import annotations

import collections
import contextlib

from aiokafka.errors import KafkaError

from stream_ingest.buffers import Flush
from stream_ingest.writer import KafkaFlushWriter
from tests.integration.stream_ingest.conftest import Ingest, feedback, task_definition


class BrokerFailsMidTransaction:
    """The real writer, except that its first two flushes die after sending their batches."""

    def __init__(self, inner: KafkaFlushWriter, failures: int = 2) -> None:
        self.inner = inner
        self.remaining = failures

    async def open(self, partition: int) -> None:
        await self.inner.open(partition)

    async def close(self, partition: int) -> None:
        await self.inner.close(partition)

    async def close_all(self) -> None:
        await self.inner.close_all()

    async def commit(self, flush: Flush) -> None:
        if self.remaining and flush.batches:
            self.remaining -= 1
            producer = self.inner._producers[flush.partition]
            async with producer.transaction():  # aborts on the way out
                for record in flush.batches:
                    await producer.send(self.inner._batches_topic, record.value, key=record.key)
                await producer.flush()  # the batches really reach the broker
                raise KafkaError("injected: broker failure mid-transaction")
        await self.inner.commit(flush)


async def test_a_failed_flush_is_replayed_from_the_committed_offset(ingest: Ingest) -> None:
    await ingest.apply(task_definition("abort.task", max_events=50, max_age_s=0.3))
    faults: list[BrokerFailsMidTransaction] = []

    def wrap(writer: KafkaFlushWriter) -> BrokerFailsMidTransaction:
        faults.append(BrokerFailsMidTransaction(writer))
        return faults[-1]

    async with contextlib.AsyncExitStack() as stack:
        service = await stack.enter_async_context(ingest.running(wrap_writer=wrap))
        await ingest.publish([(b"abort.task", feedback(f"a{i}", "abort.task")) for i in range(300)])

        async def all_counted() -> bool:
            return sum(len(b) for b in await ingest.batches()) >= 300

        await ingest.until(all_counted)
    assert faults[0].remaining == 0
    assert service.metrics.transactions_aborted._value.get() == 2
    counted = collections.Counter(e for b in await ingest.batches() for e in b.event_ids)
    assert set(counted) == {f"a{i}" for i in range(300)}
    assert max(counted.values()) == 1
    # The replayed events were not mistaken for duplicates of the aborted ones.
    assert await ingest.dead_letters() == []
