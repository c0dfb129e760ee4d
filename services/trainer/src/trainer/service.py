"""The trainer service: ``training.batches`` in, model versions and champions out.

Exactly once, per partition of ``training.batches`` (and so per task, the key):

1. the batches of one poll are grouped by task and merged, and each task's
   :class:`~trainer.learner.TaskLearner` (an ensemble task's
   :class:`~trainer.ensemble.EnsembleLearner`) scores then learns them;
2. one Kafka transaction, on a producer whose transactional id belongs to the
   partition, writes the new :class:`ModelVersion`, any :class:`ChampionChange`,
   tombstones of retired versions, refused batches (``feedback.dlq``), the
   :class:`ModelPublished` announcement, *and* the consumer offsets;
3. only after the commit are the registry view, the Redis cache and the metrics
   updated. If the transaction fails, the learners of those tasks are dropped (they
   are rebuilt from the registry) and the partition is re-read from its committed
   offset, so no batch is learned twice and none is skipped.

A new owner of a partition (rebalance, restart) initialises its transactional
producer first, which fences the previous owner and completes or aborts its open
transaction; it then reads the registry to its end, so it continues from the last
committed version of each task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import start_http_server

from flywheel import serde
from flywheel.catalog import TaskCatalog
from flywheel.errors import FlywheelError, SerdeError
from flywheel.events import ModelVersion, TrainingBatch
from flywheel.heartbeat import HeartbeatPublisher
from flywheel.kafka import make_consumer, wait_for_kafka
from flywheel.redis import RedisClient, RedisConfig, connect_redis, wait_for_redis
from flywheel.registry import (
    ModelCache,
    ModelRegistry,
    announcement,
    make_registry_producer,
    publish_registry_records,
    rebuild_cache,
    reconcile_cache,
)
from flywheel.tasks import TaskDefinition
from flywheel.topics import (
    ALERTS,
    MODELS_REGISTRY,
    TRAINING_BATCHES,
)
from trainer.alerts import LearningAlerts
from trainer.config import Settings
from trainer.ensemble import Learner, resume_learner
from trainer.learner import BatchReport
from trainer.metrics import TrainerMetrics
from trainer.records import Outgoing, dead_letter, merge_batches, registry_writes
from trainer.replay import recent_batches

__all__ = ["TrainerService"]

log = logging.getLogger(__name__)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: TrainerService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.acquire(assigned)


class TrainerService:
    name = "trainer"

    def __init__(self, settings: Settings, *, metrics: TrainerMetrics | None = None) -> None:
        self.settings = settings
        self.kafka = settings.kafka_config("flywheel-trainer")
        self.redis_config = RedisConfig(
            url=settings.redis_url,
            key_prefix=settings.redis_key_prefix,
            cluster=settings.redis_cluster,
        )
        self.metrics = metrics or TrainerMetrics()
        self.batches_topic = self.kafka.topic(TRAINING_BATCHES)
        self.group_id = self.kafka.scoped(settings.trainer_group_id)
        self.catalog = TaskCatalog(self.kafka)
        self.registry = ModelRegistry(self.kafka)
        # A TaskLearner per task, or an EnsembleLearner for a task with an ensemble.
        self.learners: dict[str, Learner] = {}
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._tasks_of: dict[TopicPartition, set[str]] = defaultdict(set)
        self._trained_through: dict[tuple[str, int], datetime] = {}
        self._alerts = LearningAlerts()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._replayer: AIOKafkaConsumer | None = None
        self._cache: ModelCache | None = None
        self._redis: RedisClient | None = None
        # Bumped on every assignment change: a poll that straddles one is dropped, since
        # the consumer re-fetches from the committed offsets of the new assignment.
        self._generation = 0
        self._http: Any = None
        self._reconciler: asyncio.Task[None] | None = None
        # Plain counts for the heartbeat (the Prometheus series are per task).
        self.batches_total = 0  # training batch records settled: learned or dead-lettered
        self.batch_errors_total = 0  # of which dead-lettered, plus records of aborted updates
        self.events_trained_total = 0
        self.heartbeat = HeartbeatPublisher(
            self.kafka,
            self.name,
            instance=settings.instance_id or None,
            interval_s=settings.heartbeat_interval_s,
            gauges=self.heartbeat_gauges,
        )

    def heartbeat_gauges(self) -> dict[str, float]:
        """The trainer's heartbeat gauges (``flywheel.heartbeat``), from its own state.

        A training batch is the trainer's unit of work, so ``requests_total`` counts
        batches settled and ``request_errors_total`` those it failed (dead-lettered, or
        in an update transaction that aborted).
        """
        owned = set().union(*(self._tasks_of.get(tp, set()) for tp in self._producers))
        champions = [
            learner.champion.record
            for learner in self.learners.values()
            if learner.champion is not None
        ]
        return {
            "partitions_owned": float(len(self._producers)),
            "tasks_owned": float(len(owned)),
            "learners": float(len(self.learners)),
            "model_trees": float(sum(record.trees for record in champions)),
            "model_bytes": float(sum(len(record.model_text) for record in champions)),
            "events_trained_total": float(self.events_trained_total),
            "requests_total": float(self.batches_total),
            "request_errors_total": float(self.batch_errors_total),
        }

    @property
    def port(self) -> int:
        """The /metrics port actually bound (useful with port 0 in tests)."""
        return int(self._http.server_port) if self._http is not None else 0

    async def start(self) -> None:
        timeout = self.settings.startup_timeout_s
        await wait_for_kafka(self.kafka, timeout_s=timeout)
        await wait_for_redis(self.redis_config, timeout_s=timeout)
        self._redis = connect_redis(self.redis_config)
        self._cache = ModelCache(self._redis, key_prefix=self.redis_config.key_prefix)
        await self.catalog.start(follow=True)
        await self.registry.start(follow=False)
        # Redis is a cache: whatever it lost (flush, restart) comes back from Kafka. Not
        # for deleted tasks: the predictors removed their keys and would only do it again.
        await rebuild_cache(self.registry, self._cache, skip=self.catalog.deleted())
        consumer = make_consumer(
            self.kafka,
            group_id=self.group_id,
            read_committed=True,
            max_poll_records=self.settings.trainer_max_poll_records,
        )
        consumer.subscribe([self.batches_topic], listener=_Rebalance(self))
        self._replayer = make_consumer(self.kafka, group_id=None, read_committed=True)
        await self._replayer.start()
        # Set before start(): the first assignment may arrive while it is joining.
        self._consumer = consumer
        await consumer.start()
        self._http, _ = start_http_server(
            self.settings.trainer_port,
            addr=self.settings.trainer_host,
            registry=self.metrics.registry,
        )
        await self.heartbeat.start()
        if self.settings.trainer_cache_reconcile_s > 0:
            self._reconciler = asyncio.create_task(self._reconcile_loop(), name="reconcile")
        self.metrics.up.set(1)

    async def run(self) -> None:
        consumer = self._consumer
        assert consumer is not None, "start() first"
        while not self._stopping.is_set():
            generation = self._generation
            polled = await consumer.getmany(timeout_ms=500)
            if not polled:
                continue
            async with self._lock:
                if self._stopping.is_set():
                    return
                if generation != self._generation:
                    await self._rewind(consumer, list(polled))
                    continue
                await self.registry.catch_up()
                for tp, records in polled.items():
                    if tp in self._producers and records:
                        await self._process(consumer, tp, records)

    async def stop(self) -> None:
        self._stopping.set()
        self.metrics.up.set(0)
        await self.heartbeat.stop()
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
            self._reconciler = None
        async with self._lock:
            pass  # an update in flight finishes its transaction first; none starts after
        if self._consumer is not None:
            # Not under the lock: leaving the group calls release(), which takes it.
            await self._consumer.stop()
            self._consumer = None
        for producer in self._producers.values():
            await producer.stop()
        self._producers.clear()
        if self._replayer is not None:
            await self._replayer.stop()
            self._replayer = None
        await self.catalog.stop()
        await self.registry.stop()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    async def _rewind(self, consumer: AIOKafkaConsumer, polled: list[TopicPartition]) -> None:
        """Re-read from the committed offsets: a poll straddled an assignment change.

        Its records may predate the new assignment or follow it; either way they are
        read again in order, rather than learned against a state that moved under them.
        """
        for tp in polled:
            if tp not in self._producers:
                continue
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    # ---- the Redis cache -----------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.settings.trainer_cache_reconcile_s)
            try:
                await self.reconcile_cache()
            except Exception:
                # Redis or Kafka briefly away: the next round tries again.
                log.exception("cache reconcile failed; retrying next interval")

    async def reconcile_cache(self) -> int:
        """Rewrite the champions Redis lost (one cluster shard restarted empty, an
        eviction) and re-announce them, so predictors that answered no_model load them;
        one that already serves the version ignores the announcement. Every replica
        checks every task: the writes never overwrite a pointer (SET NX), so replicas
        and promotions racing a repair agree. Returns how many were repaired."""
        cache = self._cache
        if cache is None:
            return 0
        async with self._lock:
            if self._stopping.is_set():
                return 0
            # The latest champion changes, from any replica or operator, first.
            await self.registry.catch_up()
            repaired = await reconcile_cache(self.registry, cache, skip=self.catalog.deleted())
        for version in repaired:
            self.metrics.cache_repairs.labels(version.task).inc()
            log.info(
                "champion restored in Redis from the registry",
                extra={"task": version.task, "version": version.version},
            )
        for version in repaired:
            history = self.registry.history(version.task)
            await self._announce(version, history[-1].kind if history else "promotion")
        return len(repaired)

    async def _announce(
        self, version: ModelVersion, kind: Literal["promotion", "rollback"]
    ) -> None:
        """Re-announce a restored champion on ``models.published`` (a short-lived
        producer: repairs are rare, and the transactional ones belong to partitions)."""
        await publish_registry_records(self.kafka, [], announce=announcement(version, kind))

    # ---- partition ownership -----------------------------------------------------

    def transactional_id(self, partition: int) -> str:
        """The transactional id of one training.batches partition: the same on every
        replica and across restarts, so a new owner fences the one before it."""
        stem = self.settings.trainer_transactional_id
        return self.kafka.scoped(f"{stem}.{TRAINING_BATCHES.name}.{partition}")

    async def acquire(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            self._generation += 1
            new = [tp for tp in assigned if tp not in self._producers]
            for tp in new:
                producer = make_registry_producer(
                    self.kafka, transactional_id=self.transactional_id(tp.partition)
                )
                await producer.start()  # init_transactions: fences the previous owner
                self._producers[tp] = producer
            # The previous owner's last committed versions are visible now.
            await self.registry.catch_up()
            await self._refill_windows(new)
            log.info(
                "partitions assigned",
                extra={
                    "partitions": sorted(tp.partition for tp in assigned),
                    "owned": sorted(tp.partition for tp in self._producers),
                },
            )

    async def _refill_windows(self, partitions: list[TopicPartition]) -> None:
        consumer, replayer = self._consumer, self._replayer
        records = self.settings.trainer_replay_records
        if consumer is None or replayer is None or records == 0:
            return
        for tp in partitions:
            committed = await consumer.committed(tp)
            if not committed:
                continue
            batches = await recent_batches(
                replayer,
                tp,
                committed,
                records=records,
                max_bytes=self.settings.trainer_max_batch_bytes,
            )
            for batch in batches:
                definition = self.catalog.get(batch.task)
                if definition is not None:
                    self._tasks_of[tp].add(batch.task)
                    self._learner(definition).replay(batch)
            if batches:
                log.info(
                    "replay windows refilled",
                    extra={"partition": tp.partition, "batches": len(batches)},
                )

    async def release(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            self._generation += 1
            for tp in revoked:
                producer = self._producers.pop(tp, None)
                if producer is not None:
                    await producer.stop()
                for task in self._tasks_of.pop(tp, set()):
                    self.learners.pop(task, None)
            log.info("partitions revoked", extra={"partitions": [tp.partition for tp in revoked]})

    # ---- one partition's poll ------------------------------------------------------

    async def _process(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> None:
        by_task: dict[str, list[tuple[ConsumerRecord, TrainingBatch]]] = defaultdict(list)
        outgoing: list[Outgoing] = []
        refused = 0
        for record in records:
            batch = await self._decode(record, outgoing)
            if batch is None:
                refused += 1
            else:
                by_task[batch.task].append((record, batch))
        reports: list[BatchReport] = []
        alerts_topic = self.kafka.topic(ALERTS)
        for task_name, pairs in by_task.items():
            definition = self.catalog.get(task_name)
            if definition is None:
                # Deleted while another record of this poll waited for its task.
                outgoing += [self._unknown_task(record, task_name) for record, _ in pairs]
                refused += len(pairs)
                continue
            self._tasks_of[tp].add(task_name)
            learner = self._learner(definition)
            merged = merge_batches([batch for _, batch in pairs])
            try:
                report = learner.score_then_learn(merged)
            except (ValueError, FlywheelError) as exc:
                self.learners.pop(task_name, None)
                outgoing += [
                    dead_letter(self.kafka, record, "untrainable_batch", str(exc))
                    for record, _ in pairs
                ]
                self.metrics.dead_letters.labels("untrainable_batch").inc(len(pairs))
                refused += len(pairs)
                continue
            reports.append(report)
            through = merged.oldest_event_at or merged.created_at
            self._trained_through[(task_name, report.candidate.version)] = through
            champion = learner.champion
            outgoing += registry_writes(
                self.kafka,
                self.registry,
                report,
                champion=None if champion is None else champion.record,
                trained_through=self._trained_through,
                keep_versions=self.settings.trainer_keep_versions,
            )
            for alert in self._alerts.evaluate(
                task_name, learner.rejected_in_a_row, report.live_metrics
            ):
                outgoing.append((alerts_topic, alert.fingerprint.encode(), serde.encode(alert)))
        producer = self._producers[tp]
        try:
            async with producer.transaction():
                sends = [
                    await producer.send(topic, value, key=key) for topic, key, value in outgoing
                ]
                await asyncio.gather(*sends)
                await producer.send_offsets_to_transaction(
                    {tp: records[-1].offset + 1}, self.group_id
                )
        except Exception:
            log.exception(
                "update transaction failed; re-reading the partition", extra={"p": tp.partition}
            )
            self.metrics.transactions_aborted.inc()
            self.batches_total += len(records)
            self.batch_errors_total += len(records)
            for task_name in by_task:
                self.learners.pop(task_name, None)
                self._alerts.forget(task_name)
            consumer.seek(tp, records[0].offset)
            await asyncio.sleep(0.5)
            return
        self.batches_total += len(records)
        self.batch_errors_total += refused
        await self._after_commit(outgoing, reports)

    async def _decode(
        self, record: ConsumerRecord, outgoing: list[Outgoing]
    ) -> TrainingBatch | None:
        if record.value is None:
            outgoing.append(
                dead_letter(self.kafka, record, "broken_json", "empty training batch record")
            )
            return None
        try:
            batch = serde.decode(
                TrainingBatch, record.value, max_bytes=self.settings.trainer_max_batch_bytes
            )
        except SerdeError as exc:
            outgoing.append(dead_letter(self.kafka, record, exc.reason, str(exc), exc.field))
            self.metrics.dead_letters.labels(exc.reason).inc()
            return None
        if batch.task not in self.catalog and not self.catalog.is_deleted(batch.task):
            # The catalog follows the tasks topic; give a just-applied task a moment.
            await asyncio.sleep(1.0)
        if batch.task not in self.catalog:
            outgoing.append(self._unknown_task(record, batch.task))
            return None
        return batch

    def _unknown_task(self, record: ConsumerRecord, task: str) -> Outgoing:
        """The dead letter of a batch whose task is not (or no longer) in the catalog.

        A deleted task's batches (already in training.batches when it was deleted) are
        refused like any unknown task's, as stream-ingest refuses its events, so no new
        version of it is written or cached.
        """
        deleted = self.catalog.is_deleted(task)
        error = f"task {task!r} was deleted" if deleted else f"unknown task {task!r}"
        self.metrics.dead_letters.labels("unknown_task").inc()
        return dead_letter(self.kafka, record, "unknown_task", error)

    def _learner(self, definition: TaskDefinition) -> Learner:
        name = definition.name
        registry = self.registry
        learner = self.learners.get(name)
        if learner is None or learner.task != definition:
            versions = registry.versions(name)
            learner = resume_learner(
                definition,
                champion=registry.champion(name),
                latest=versions[-1] if versions else None,
                next_version=registry.next_version(name),
                promotion_tolerance=self.settings.trainer_promotion_tolerance,
            )
            self.learners[name] = learner
        champion = registry.champion(name)
        if champion is not None and (
            learner.champion is None or learner.champion.version != champion.version
        ):
            # An operator promoted or rolled back (flywheel models promote|rollback).
            learner.adopt_champion(champion)
        learner.next_version = max(learner.next_version, registry.next_version(name))
        return learner

    async def _after_commit(self, outgoing: list[Outgoing], reports: list[BatchReport]) -> None:
        registry_topic = self.kafka.topic(MODELS_REGISTRY)
        for topic, key, value in outgoing:
            if topic == registry_topic:
                self.registry.apply(key, value)
        cache = self._cache
        for report in reports:
            task = report.task
            learner = self.learners.get(task)
            self.events_trained_total += report.rows
            self.metrics.batches.labels(task).inc()
            self.metrics.events_trained.labels(task).set(report.candidate.events_trained)
            self.metrics.update_seconds.labels(report.strategy).observe(report.update_seconds)
            self.metrics.model_trees.labels(task).set(report.candidate.trees)
            self.metrics.model_bytes.labels(task).set(len(report.candidate.model_text))
            self.metrics.live(task, report.champion, report.live_metrics)
            self.metrics.members(task, report.member_metrics)
            if (
                report.promotion is not None
                and learner is not None
                and learner.champion is not None
            ):
                self.metrics.promotions.labels(task, "promotion").inc()
                self.metrics.champion_version.labels(task).set(report.promotion.version)
                self._trained_through.pop((task, report.promotion.version), None)
                # A task deleted since its batch was decoded keeps its version in the
                # registry (history) but not in Redis, where the predictors removed it.
                if cache is not None and not self.catalog.is_deleted(task):
                    await _cache_champion(cache, learner.champion.record)
            # Only the pending challenger's entry can still be needed.
            stale = [
                k for k in self._trained_through if k[0] == task and k[1] < report.candidate.version
            ]
            for entry in stale:
                del self._trained_through[entry]


async def _cache_champion(cache: ModelCache, version: ModelVersion) -> None:
    try:
        await cache.set_champion(version)
    except Exception:
        # Redis is only a cache (the predictor falls back to the registry): log, go on.
        log.exception("could not cache the champion in Redis", extra={"task": version.task})
