"""The optimizer as a running service: Kafka in, Kafka and HTTP out.

Inputs are read without a consumer group: the optimizer is one aggregate over every
partition, and its state is rebuilt at start by seeking each input partition to
``replay_s`` seconds ago (``offsets_for_times``), so there is nothing to commit and a
restart loses no window. Alerts it fired earlier are restored from the ``alerts``
topic, so a condition that cleared while it was down still gets its resolve.

Unreadable input records are counted (``flywheel_optimizer_invalid_records_total``)
and logged with the reason; they stay in their source topic (ingest dead-letters bad
feedback itself), so nothing is lost by skipping them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from flywheel import serde
from flywheel.catalog import TaskCatalog
from flywheel.compacted import CompactedReader
from flywheel.errors import SerdeError
from flywheel.events import (
    Alert,
    FeedbackEvent,
    Heartbeat,
    ModelPublished,
    PredictionLog,
)
from flywheel.heartbeat import HeartbeatPublisher
from flywheel.kafka import ensure_topics, make_consumer, make_producer, wait_for_kafka
from flywheel.registry import ModelRegistry
from flywheel.topics import (
    ALERTS,
    FEEDBACK_EVENTS,
    HEARTBEATS,
    METRICS_PERFORMANCE,
    MODELS_PUBLISHED,
    PREDICTIONS_LOG,
)
from optimizer.advice import ChampionFacts, Recommendation
from optimizer.config import Settings
from optimizer.core import OptimizerCore
from optimizer.drift import DriftWatch
from optimizer.exporter import OptimizerMetrics
from optimizer.http import build_app
from optimizer.lag import LagProbe
from optimizer.rules import RuleFile, load_rules
from optimizer.tracker import MetricSample, PerformanceTracker, TaskShape

__all__ = ["OptimizerService", "default_rules_path"]

log = logging.getLogger(__name__)


def default_rules_path() -> Any:
    from importlib.resources import files

    return files("optimizer") / "default_rules.yml"


class OptimizerService:
    name = "optimizer"

    def __init__(self, settings: Settings, *, rules: RuleFile | None = None) -> None:
        self.settings = settings
        self._kafka = settings.kafka_config(client_id=f"optimizer-{settings.instance_id or 'main'}")
        if rules is None:
            path = settings.optimizer_rules_file or default_rules_path()
            rules = load_rules(path)
        self._catalog = TaskCatalog(self._kafka)
        self._registry_view = ModelRegistry(self._kafka)
        self.registry: CollectorRegistry = CollectorRegistry()
        self.metrics = OptimizerMetrics(self.registry)
        self.core = OptimizerCore(
            rules=rules,
            tracker=PerformanceTracker(
                shape_of=self._shape_of,
                slot_s=settings.slot_s,
                join_ttl_s=settings.join_ttl_s,
                join_max_waiting=settings.join_max_waiting,
                max_series=settings.max_series,
            ),
            drift=DriftWatch(
                detector=settings.drift_detector,
                adwin_delta=settings.drift_adwin_delta,
                ph_threshold=settings.drift_ph_threshold,
                quiet_s=settings.drift_quiet_s,
                min_samples_after=settings.drift_min_samples_after,
            ),
            budgets=settings.budgets(),
            metrics=self.metrics,
            champions=self._champions,
            rule_stale_s=settings.rule_stale_s,
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lag = LagProbe(self._kafka)
        self._heartbeat = HeartbeatPublisher(
            self._kafka,
            "optimizer",
            instance=settings.instance_id or None,
            interval_s=settings.heartbeat_interval_s,
            gauges=self._gauges,
        )
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._ready = False
        self._stopping = asyncio.Event()

    # -- lookups the core uses -------------------------------------------------------

    def _shape_of(self, task: str) -> TaskShape | None:
        definition = self._catalog.get(task)
        if definition is None:
            return None
        return definition.objective, definition.label.classes

    def _champions(self) -> list[ChampionFacts]:
        facts = []
        for task in self._registry_view.tasks():
            champion = self._registry_view.champion(task)
            if champion is None:
                continue
            definition = self._catalog.get(task)
            budget = definition.training.max_trees if definition else champion.trees
            facts.append(
                ChampionFacts(
                    task=task,
                    version=champion.version,
                    trees=champion.trees,
                    max_trees=budget,
                    model_bytes=len(champion.model_text.encode("utf-8")),
                )
            )
        return facts

    def _gauges(self) -> dict[str, float]:
        return {
            "join_waiting": float(len(self.core.tracker.join)),
            "series": float(self.core.tracker.series_count()),
            "alerts_firing": float(len(self.core.book.firing())),
        }

    # -- the view the HTTP layer reads -----------------------------------------------

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        return self._ready, {"tasks": self.core.tracker.tasks()}

    def recommendations(self) -> list[Recommendation]:
        return self.core.recommendations

    def firing_alerts(self) -> list[Alert]:
        return self.core.book.firing()

    def samples(self) -> list[MetricSample]:
        return self.core.samples

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # HTTP first, so /healthz answers (503 "starting") while the replay runs.
        config = uvicorn.Config(
            build_app(self),
            host=self.settings.optimizer_host,
            port=self.settings.optimizer_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._server_task = asyncio.create_task(self._server.serve(), name="optimizer.http")
        await wait_for_kafka(self._kafka, timeout_s=self.settings.startup_timeout_s)
        await ensure_topics(self._kafka)
        await self._catalog.start(follow=True)
        await self._registry_view.start(follow=True)
        await self._restore_alerts()
        self._producer = make_producer(self._kafka, linger_ms=20)
        await self._producer.start()
        await self._open_inputs()
        await self._lag.start()
        await self._heartbeat.start()
        self._ready = True

    async def _restore_alerts(self) -> None:
        history: list[Alert] = []

        def keep(_key: bytes | None, value: bytes | None) -> None:
            if value is not None:
                history.append(serde.decode(Alert, value))

        reader = CompactedReader(self._kafka, self._kafka.topic(ALERTS), keep)
        try:
            await reader.load()
        finally:
            await reader.stop()
        firing = self.core.book.restore(history)
        log.info("alerts restored", extra={"transitions": len(history), "firing": firing})

    async def _open_inputs(self) -> None:
        consumer = make_consumer(self._kafka, group_id=None, read_committed=True)
        await consumer.start()
        self._consumer = consumer
        topics = [PREDICTIONS_LOG, FEEDBACK_EVENTS, HEARTBEATS, MODELS_PUBLISHED]
        # A group-less consumer has no metadata for topics it was not assigned, and
        # aiokafka has no public refresh (flywheel.compacted does the same).
        cluster = await consumer._client.fetch_all_metadata()
        tps: list[TopicPartition] = []
        for spec in topics:
            name = self._kafka.topic(spec)
            partitions = cluster.partitions_for_topic(name) or set(range(spec.partitions))
            tps += [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(tps)
        since_ms = int((time.time() - self.settings.replay_s) * 1000)
        offsets = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            found = offsets.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])

    async def run(self) -> None:
        assert self._consumer is not None
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        next_lag = loop.time()
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2_000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    self._handle(record, now)
            if loop.time() >= next_lag:
                next_lag = loop.time() + self.settings.lag_interval_s
                await self._measure_lag(now)
            if loop.time() >= next_tick:
                next_tick = loop.time() + self.settings.tick_s
                await self.tick(now)

    def _handle(self, record: ConsumerRecord[bytes, bytes], now: float) -> None:
        topic = record.topic[len(self._kafka.topic_prefix) :]
        self.metrics.records.labels(topic=topic).inc()
        if record.value is None:
            return
        try:
            if topic == PREDICTIONS_LOG.name:
                self.core.on_prediction(serde.decode(PredictionLog, record.value), now)
            elif topic == FEEDBACK_EVENTS.name:
                self.core.on_feedback(serde.decode(FeedbackEvent, record.value), now)
            elif topic == HEARTBEATS.name:
                self.core.on_heartbeat(serde.decode(Heartbeat, record.value), now)
            elif topic == MODELS_PUBLISHED.name:
                self.core.on_published(serde.decode(ModelPublished, record.value), now)
        except SerdeError as exc:
            self.metrics.invalid.labels(topic=topic, reason=exc.reason).inc()
            log.warning(
                "unreadable %s record skipped: %s",
                topic,
                exc,
                extra={"partition": record.partition, "offset": record.offset},
            )

    async def _measure_lag(self, now: float) -> None:
        try:
            self.core.on_lag(await self._lag.measure(), now)
        except KafkaError as exc:
            log.warning("consumer lag not measured: %s", exc)

    async def tick(self, now: float) -> None:
        """Evaluate, then publish the metrics and every alert transition."""
        metrics = self.core.tick(now)
        self.metrics.last_tick.set(now)
        assert self._producer is not None
        topic = self._kafka.topic(METRICS_PERFORMANCE)
        try:
            for metric in metrics:
                key = (metric.task or metric.service or "").encode()
                await self._producer.send(topic, serde.encode(metric), key=key)
            self.metrics.emitted.inc(len(metrics))
        except KafkaError as exc:
            log.warning("performance metrics not sent: %s", exc)
        await self._publish_alerts()

    async def _publish_alerts(self) -> None:
        assert self._producer is not None
        pending = self.core.book.drain()
        for index, alert in enumerate(pending):
            try:
                await self._producer.send_and_wait(
                    self._kafka.topic(ALERTS), serde.encode(alert), key=alert.fingerprint.encode()
                )
            except KafkaError as exc:
                # Transitions are facts: keep them, in order, for the next tick.
                self.core.book.requeue(pending[index:])
                log.warning("alerts not sent, will retry: %s", exc)
                return
            self.metrics.transitions.labels(alertname=alert.name, state=alert.state.value).inc()
            log.info(
                "alert %s %s",
                alert.name,
                alert.state.value,
                extra={"fingerprint": alert.fingerprint, "alert_labels": alert.labels},
            )

    async def stop(self) -> None:
        self._stopping.set()
        self._ready = False
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                await self._publish_alerts()  # a transition decided must not be lost
                await self._producer.flush()
        await self._heartbeat.stop()
        await self._lag.stop()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self._registry_view.stop()
        await self._catalog.stop()
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            await self._server_task
