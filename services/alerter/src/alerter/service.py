"""The alerter service: wires Kafka, the engine, the receivers and the HTTP API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Generator

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from alerter.api import create_app
from alerter.clock import Clock, SystemClock
from alerter.config import Settings
from alerter.delivery import Deliverer
from alerter.engine import Engine
from alerter.grouping import Dispatcher
from alerter.journal import KafkaJournal
from alerter.muting import Inhibitor, SilenceStore
from alerter.receivers import TargetGuard, build_receivers
from alerter.routing import AlerterConfig
from flywheel.errors import SerdeError
from flywheel.events import Alert, DeadLetter
from flywheel.heartbeat import HeartbeatPublisher
from flywheel.kafka import ensure_topics, make_consumer, make_producer, wait_for_kafka
from flywheel.serde import decode, encode
from flywheel.topics import ALERTS, ALERTS_DLQ, ALERTS_NOTIFICATIONS, ALERTS_STATE

__all__ = ["AlerterService"]

log = logging.getLogger(__name__)

# The state journal's transactional id (scoped by the topic prefix). One per
# deployment: a second alerter instance fences the first.
JOURNAL_TRANSACTIONAL_ID = "flywheel-alerter"


class _Server(uvicorn.Server):
    # SIGTERM/SIGINT belong to flywheel.lifecycle, which calls stop(); uvicorn must not
    # install its own handlers over them.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AlerterService:
    name = "alerter"

    def __init__(
        self, settings: Settings, config: AlerterConfig, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._config = config
        self._clock = clock or SystemClock()
        self._kafka = settings.kafka_config("flywheel-alerter")
        self.group_id = self._kafka.scoped(settings.alerter_consumer_group)
        self.journal_transactional_id = self._kafka.scoped(JOURNAL_TRANSACTIONAL_ID)
        self._api_key_digest = settings.api_key_digest()
        self._journal: KafkaJournal | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._client: httpx.AsyncClient | None = None
        self._engine: Engine | None = None
        self._server: _Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self.heartbeat = HeartbeatPublisher(
            self._kafka,
            self.name,
            instance=settings.instance_id or None,
            interval_s=settings.heartbeat_interval_s,
            gauges=self._gauges,
        )

    def _gauges(self) -> dict[str, float]:
        return {} if self._engine is None else self._engine.heartbeat_gauges()

    async def start(self) -> None:
        settings = self._settings
        await wait_for_kafka(self._kafka, timeout_s=settings.startup_timeout_s)
        await ensure_topics(self._kafka, [ALERTS, ALERTS_NOTIFICATIONS, ALERTS_DLQ, ALERTS_STATE])
        # Starting the transactional producer first fences a predecessor (even a
        # SIGKILLed one) and aborts its open transaction before we read the state.
        journal = KafkaJournal(self._kafka, self.journal_transactional_id)
        await journal.start()
        self._journal = journal
        restored = await journal.load()
        self._client = httpx.AsyncClient(follow_redirects=False)
        guard = TargetGuard(self._config.allowed_networks())
        receivers = build_receivers(self._config.receivers, self._client, guard)
        silences = SilenceStore()
        dispatcher = Dispatcher(
            self._config.routing_tree(), silences, Inhibitor(self._config.inhibit_rules)
        )
        deliverer = Deliverer(receivers, journal, self._clock)
        engine = Engine(dispatcher, deliverer, journal, self._clock)
        engine.restore(restored)
        self._engine = engine
        self._producer = make_producer(self._kafka)
        await self._producer.start()
        self._consumer = make_consumer(
            self._kafka,
            self._kafka.topic(ALERTS),
            group_id=self.group_id,
            read_committed=True,
            max_poll_records=500,
        )
        await self._consumer.start()
        app = create_app(engine, self._publish, self._api_key_digest, self._clock.now)
        self._server = _Server(
            uvicorn.Config(
                app,
                host=settings.alerter_http_host,
                port=settings.alerter_http_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        self._server_task = asyncio.create_task(self._server.serve(), name="alerter.http")
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise RuntimeError("alerter HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
        await self.heartbeat.start()
        log.info(
            "alerter ready",
            extra={
                "port": settings.alerter_http_port,
                "receivers": sorted(receivers),
                "authenticated_api": self._api_key_digest is not None,
            },
        )

    async def _publish(self, alerts: list[Alert]) -> None:
        assert self._producer is not None
        topic = self._kafka.topic(ALERTS)
        futures = [
            await self._producer.send(topic, value=encode(a), key=a.fingerprint.encode())
            for a in alerts
        ]
        for future in futures:
            await future

    async def run(self) -> None:
        assert self._engine is not None
        tasks = [
            asyncio.create_task(self._consume(), name="alerter.consume"),
            asyncio.create_task(self._engine.run(), name="alerter.engine"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _consume(self) -> None:
        assert self._consumer is not None and self._engine is not None
        group_id = self.group_id
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            alerts: list[Alert] = []
            rejected: list[DeadLetter] = []
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batches.items():
                for record in records:
                    offsets[tp] = record.offset
                    try:
                        alerts.append(decode(Alert, record.value or b""))
                    except SerdeError as exc:
                        rejected.append(
                            _dead_letter(record.value, record.key, tp, record.offset, exc)
                        )
            if offsets:
                await self._engine.accept(alerts, rejected, offsets, group_id)

    async def stop(self) -> None:
        await self.heartbeat.stop()
        if self._engine is not None:
            await self._engine.stop(self._settings.alerter_shutdown_grace_s)
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server_task, timeout=5)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._journal is not None:
            await self._journal.stop()
        if self._client is not None:
            await self._client.aclose()


def _dead_letter(
    value: bytes | None, key: bytes | None, tp: TopicPartition, offset: int, exc: SerdeError
) -> DeadLetter:
    return DeadLetter(
        reason=exc.reason,
        error=str(exc)[:2_000],
        field=exc.field,
        original_b64=base64.b64encode(value or b"").decode(),
        original_key=key.decode("utf-8", "replace")[:1_024] if key else None,
        source_topic=tp.topic,
        source_partition=tp.partition,
        source_offset=offset,
    )
