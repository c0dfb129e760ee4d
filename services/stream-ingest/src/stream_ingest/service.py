"""The stream-ingest service: feedback.events in, training.batches and feedback.dlq out.

The loop: poll records, hand each to its partition's :class:`PartitionState` (validate,
de-duplicate, buffer or dead-letter), then flush every partition that is due by size
or age, one Kafka transaction per partition. A failed transaction is aborted and the
partition replayed from its committed offset with its dedup window restored from the
changelog, so nothing is half-counted; a fenced producer (another replica owns the
partition now) ends the process, because its state is no longer authoritative.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced

from flywheel.catalog import TaskCatalog
from flywheel.errors import ConfigError
from flywheel.heartbeat import HeartbeatPublisher
from flywheel.kafka import ensure_topics, make_consumer, wait_for_kafka
from flywheel.metrics import serve_metrics
from flywheel.topics import ALL_TOPICS, FEEDBACK_DLQ, FEEDBACK_EVENTS, TRAINING_BATCHES
from stream_ingest.buffers import Flush, PartitionState
from stream_ingest.changelog import DEDUP_CHANGELOG, restore_window
from stream_ingest.config import Settings
from stream_ingest.metrics import IngestMetrics
from stream_ingest.validation import EventValidator
from stream_ingest.writer import FlushWriter, KafkaFlushWriter

__all__ = ["StreamIngest"]

log = logging.getLogger(__name__)

MAX_POLL_WAIT_S = 0.5
MIN_POLL_WAIT_S = 0.005


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: StreamIngest) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.release([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.acquire([tp.partition for tp in assigned])


class StreamIngest:
    name = "stream-ingest"

    def __init__(
        self,
        settings: Settings,
        *,
        serve_http: bool = True,
        wrap_writer: Callable[[KafkaFlushWriter], FlushWriter] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = IngestMetrics()
        self._serve_http = serve_http
        self._config = settings.kafka_config(client_id=f"stream-ingest{settings.instance_id}")
        self._source_topic = self._config.topic(FEEDBACK_EVENTS)
        self.catalog = TaskCatalog(self._config)
        self._validator = EventValidator(
            self.catalog.get, max_event_bytes=settings.ingest_max_event_bytes
        )
        writer = KafkaFlushWriter(
            self._config,
            transactional_id_stem=settings.ingest_transactional_id,
            group_id=self.group_id,
            source_topic=self._source_topic,
            batches_topic=self._config.topic(TRAINING_BATCHES),
            dlq_topic=self._config.topic(FEEDBACK_DLQ),
            changelog_topic=self._config.topic(DEDUP_CHANGELOG),
        )
        # wrap_writer lets the integration tests inject broker failures mid-transaction.
        self._writer: FlushWriter = wrap_writer(writer) if wrap_writer else writer
        self._states: dict[int, PartitionState] = {}
        self._lock = asyncio.Lock()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._owned: set[int] = set()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._depth_tasks: set[str] = set()
        self.heartbeat = HeartbeatPublisher(
            self._config,
            self.name,
            instance=settings.instance_id or None,
            interval_s=settings.heartbeat_interval_s,
            gauges=self.metrics.heartbeat_gauges,
        )

    @property
    def group_id(self) -> str:
        """The consumer group as the broker knows it (scoped by the topic prefix)."""
        return self._config.scoped(self.settings.ingest_group_id)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # close whatever did start before re-raising
            raise

    async def _start(self) -> None:
        timeout = self.settings.startup_timeout_s
        await wait_for_kafka(self._config, timeout_s=timeout)
        await ensure_topics(self._config, (*ALL_TOPICS, DEDUP_CHANGELOG))
        await self.catalog.start(follow=True)
        self._restorer = make_consumer(self._config, group_id=None, read_committed=True)
        await self._restorer.start()
        await self._check_partitions()
        self._consumer = make_consumer(
            self._config,
            group_id=self.group_id,
            read_committed=True,
            max_poll_records=self.settings.ingest_max_poll_records,
        )
        self._consumer.subscribe([self._source_topic], listener=_Rebalance(self))
        await self._consumer.start()
        if self._serve_http:
            serve_metrics(
                self.settings.ingest_port,
                host=self.settings.ingest_host,
                registry=self.metrics.registry,
            )
        await self.heartbeat.start()

    async def _check_partitions(self) -> None:
        changelog_topic = self._config.topic(DEDUP_CHANGELOG)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._config.bootstrap_servers, client_id=self._config.client_id
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.startup_timeout_s
        await admin.start()
        try:
            while True:  # a topic created a moment ago takes a little while to be described
                described = await admin.describe_topics([self._source_topic, changelog_topic])
                counts = {t["topic"]: len(t["partitions"]) for t in described}
                source, changelog = counts[self._source_topic], counts[changelog_topic]
                if (source and changelog) or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
        if not source or changelog < source:
            raise ConfigError(
                f"{changelog_topic} has {changelog} partitions but {self._source_topic} has "
                f"{source}: the changelog needs at least as many; add partitions to it first"
            )

    async def run(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("start() first")
        while not self._stopping.is_set():
            polled = await consumer.getmany(timeout_ms=int(self._poll_wait() * 1000))
            now = time.monotonic()
            for tp, records in polled.items():
                state = self._states.get(tp.partition)
                if state is None:
                    continue  # revoked between the fetch and now; its new owner reads it
                for record in records:
                    reason = state.add(
                        record.key, record.value, record.offset, record.timestamp, now
                    )
                    if reason is not None:
                        log.debug("rejected", extra={"reason": reason, "offset": record.offset})
                self.metrics.events_in.inc(len(records))
                highwater = consumer.highwater(tp)
                if highwater is not None and records:
                    self.metrics.consumer_lag.labels(str(tp.partition)).set(
                        max(0, highwater - records[-1].offset - 1)
                    )
            self._reap()
            await self.flush(due_only=True)
            self._apply_backpressure(consumer)
            # getmany(timeout_ms=0) returns without suspending when nothing is fetched;
            # yield so background commits and the fetcher always get the loop.
            await asyncio.sleep(0)

    def _poll_wait(self) -> float:
        """Sleep in the poll until the next age-based flush is due, at most 0.5 s."""
        wait = MAX_POLL_WAIT_S
        now = time.monotonic()
        for partition, state in self._states.items():
            deadline = state.deadline()
            if deadline is None:
                continue
            if partition in self._inflight:
                # Due but waiting for its previous commit: check back shortly, not in a spin.
                wait = min(wait, max(MIN_POLL_WAIT_S, deadline - now))
            else:
                wait = min(wait, max(0.0, deadline - now))
        return wait

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        """Stop fetching a partition whose commit is slow and whose buffer keeps growing."""
        limit = self.settings.ingest_max_buffered_events
        for partition, state in self._states.items():
            if partition in self._inflight and state.buffered >= limit:
                consumer.pause(TopicPartition(self._source_topic, partition))

    async def flush(self, *, due_only: bool) -> None:
        """Start a commit for every partition that is due (at shutdown: everything, awaited).

        Commits run in the background so polling and validating go on while a
        transaction is in flight; a partition has at most one commit in flight, which
        keeps its offsets in order.
        """
        async with self._lock:
            now = time.monotonic()
            for partition, state in self._states.items():
                if partition in self._inflight or not state.pending:
                    continue
                if due_only and not state.due(now):
                    continue
                flush = state.drain(self.settings.ingest_max_batch_bytes)
                self._inflight[partition] = asyncio.create_task(
                    self._commit(flush), name=f"flush:{partition}"
                )
            self._update_depth()
        if not due_only:
            while self._inflight:
                await asyncio.gather(*self._inflight.values())
                await self.flush(due_only=False)

    def _reap(self) -> None:
        """Re-raise a fatal error (a fenced producer) from a finished background commit."""
        for task in [t for t in self._inflight.values() if t.done()]:
            task.result()

    async def _commit(self, flush: Flush) -> None:
        started = time.monotonic()
        try:
            await self._writer.commit(flush)
        except ProducerFenced:
            # Left in _inflight on purpose: run() re-raises it and the process exits.
            log.error(
                "fenced: another replica owns this partition now",
                extra={"partition": flush.partition},
            )
            raise
        except KafkaError:
            self.metrics.transactions_aborted.inc()
            log.exception(
                "flush transaction failed; replaying the partition from its committed offset",
                extra={"partition": flush.partition},
            )
            await self._recover(flush.partition)
        else:
            self._record(flush, time.monotonic() - started)
        self._inflight.pop(flush.partition, None)
        if self._consumer is not None and flush.partition in self._owned:
            self._consumer.resume(TopicPartition(self._source_topic, flush.partition))

    def _record(self, flush: Flush, seconds: float) -> None:
        m = self.metrics
        m.flush_seconds.observe(seconds)
        m.batches.inc(len(flush.batches))
        for record in flush.batches:
            m.events_out.labels(record.key.decode() if record.key else "").inc(record.events)
        for reason in flush.dead_letter_reasons:
            m.dead_letters.labels(reason).inc()
        if flush.oldest_published_ms is not None:
            m.freshness_seconds.observe(max(0.0, time.time() - flush.oldest_published_ms / 1000))

    def _update_depth(self) -> None:
        depth = dict.fromkeys(self._depth_tasks, 0)
        for state in self._states.values():
            for task, n in state.task_depths():
                depth[task] = depth.get(task, 0) + n
        for task, n in depth.items():
            self.metrics.buffer_depth.labels(task).set(n)
        # Remembered so a task whose buffers emptied reports 0 rather than a stale depth.
        self._depth_tasks = set(depth)

    async def acquire(self, partitions: list[int]) -> None:
        """Own ``partitions``: fence their previous owner, restore dedup, seek to committed."""
        async with self._lock:
            for partition in partitions:
                self._owned.add(partition)
                await self._writer.open(partition)
                await self._recover(partition)
            log.info("partitions assigned: %s", partitions)

    async def _recover(self, partition: int) -> None:
        """Forget what ``partition`` holds and start again from its committed offset."""
        consumer, restorer = self._consumer, self._restorer
        if consumer is None or restorer is None:
            raise RuntimeError("start() first")
        # No state while restoring: records polled meanwhile are skipped, then re-read
        # after the seek below, so none is counted against a half-built window.
        self._states.pop(partition, None)
        if partition not in self._owned:
            return  # revoked meanwhile; the new owner replays it
        tp = TopicPartition(self._config.topic(DEDUP_CHANGELOG), partition)
        window = await restore_window(restorer, tp, self.settings.ingest_dedup_window)
        source = TopicPartition(self._source_topic, partition)
        committed = await consumer.committed(source)
        if committed is None:
            await consumer.seek_to_beginning(source)
        else:
            consumer.seek(source, committed)
        self._states[partition] = PartitionState(
            self._source_topic,
            partition,
            self._validator,
            window,
            dlq_max_age_s=self.settings.ingest_dlq_max_age_s,
        )

    async def release(self, partitions: list[int]) -> None:
        """Give ``partitions`` up after committing what they hold (best effort)."""
        async with self._lock:
            for partition in partitions:
                self._owned.discard(partition)
                inflight = self._inflight.pop(partition, None)
                state = self._states.pop(partition, None)
                try:
                    if inflight is not None:
                        await inflight
                    if state is not None and state.pending:
                        await self._writer.commit(state.drain(self.settings.ingest_max_batch_bytes))
                except KafkaError:
                    # Not committed, so the next owner replays it from the committed offset.
                    log.exception(
                        "could not flush a revoked partition", extra={"partition": partition}
                    )
                await self._writer.close(partition)
            log.info("partitions revoked: %s", partitions)

    async def stop(self) -> None:
        """Commit everything buffered, then leave the group (a SIGTERM loses nothing)."""
        self._stopping.set()
        await self.heartbeat.stop()
        if self._consumer is not None:
            try:
                await self.flush(due_only=False)
            except KafkaError:
                log.exception("final flush failed; the next owner replays from the offset")
            await self._consumer.stop()
            self._consumer = None
        await self._writer.close_all()
        if self._restorer is not None:
            await self._restorer.stop()
            self._restorer = None
        await self.catalog.stop()
