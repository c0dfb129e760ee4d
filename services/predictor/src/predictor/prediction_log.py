"""Every prediction to ``predictions.log``, off the response path.

The handler only appends to a bounded queue (no await, no I/O); a background task
encodes and sends in batches. A full queue drops the newest entry and counts it in
``flywheel_predictor_log_dropped_total{reason="queue_full"}``: the response is never
held up, and a loss is never silent. ``stop()`` drains the queue before returning.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from flywheel import serde
from flywheel.events import PredictionLog
from predictor.metrics import PredictorMetrics

__all__ = ["PredictionLogSender"]

log = logging.getLogger(__name__)

SEND_BATCH = 500
# Entries encoded and handed to the producer between two turns of the event loop.
YIELD_EVERY = 8


class PredictionLogSender:
    def __init__(
        self,
        producer: AIOKafkaProducer | None,
        topic: str,
        metrics: PredictorMetrics,
        *,
        max_queue: int,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._metrics = metrics
        self._max_queue = max_queue
        self._queue: deque[PredictionLog] = deque()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._stopping = False
        # Plain counts beside the Prometheus ones, for the heartbeat: entries refused
        # by the full queue, and every entry not logged (overflow + Kafka refusals).
        self.overflowed = 0
        self.dropped = 0

    def submit(self, entry: PredictionLog) -> None:
        if len(self._queue) >= self._max_queue:
            self._metrics.log_dropped.labels("queue_full").inc()
            self.overflowed += 1
            self.dropped += 1
            return
        self._queue.append(entry)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._sender = asyncio.create_task(self._run(), name="predictions.log")

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(SEND_BATCH, len(self._queue)))]
            self._metrics.log_queue.set(len(self._queue))
            await self._send(batch)

    async def _send(self, batch: list[PredictionLog]) -> None:
        if self._producer is None:
            self._metrics.log_dropped.labels("no_producer").inc(len(batch))
            self.dropped += len(batch)
            return
        futures = []
        try:
            for i, entry in enumerate(batch, 1):
                futures.append(
                    await self._producer.send(
                        self._topic, serde.encode(entry), key=entry.task.encode()
                    )
                )
                if i % YIELD_EVERY == 0:
                    # producer.send() rarely suspends: without this a whole batch
                    # (~10 µs an entry) would hold the event loop, and every request
                    # arriving meanwhile would wait for it.
                    await asyncio.sleep(0)
            results = await asyncio.gather(*futures, return_exceptions=True)
        except KafkaError as exc:
            log.error("predictions.log send failed: %s", exc)
            self._metrics.log_dropped.labels("kafka_error").inc(len(batch) - len(futures))
            self.dropped += len(batch) - len(futures)
            results = await asyncio.gather(*futures, return_exceptions=True)
        failed = sum(1 for r in results if isinstance(r, BaseException))
        if failed:
            self._metrics.log_dropped.labels("kafka_error").inc(failed)
            self.dropped += failed
        self._metrics.log_sent.inc(len(results) - failed)

    async def stop(self) -> None:
        """Send whatever is queued, then stop."""
        # Not cancelled: a batch taken off the queue is always finished.
        self._stopping = True
        self._wake.set()
        if self._sender is not None:
            await self._sender
            self._sender = None
        await self.flush()
