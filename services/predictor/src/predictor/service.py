"""The predictor as a :class:`flywheel.lifecycle.Service`: wiring, start-up order, shutdown.

Start-up: the HTTP server comes up first (``/healthz`` answers, ``/readyz`` says
``starting``); then the ``models.published`` offsets are pinned, the ``tasks`` topic
is read (deleted tasks are not served: :mod:`predictor.task_watch`), the champions are
loaded (Redis, rebuilt from ``models.registry`` if empty) and only then is the
service ready. Shutdown stops taking requests, lets in-flight ones finish, then
drains the prediction log and the batch consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Iterator

import uvicorn
from aiokafka import AIOKafkaProducer

from flywheel.heartbeat import HeartbeatPublisher
from flywheel.kafka import make_producer, wait_for_kafka
from flywheel.redis import RedisConfig, connect_redis
from flywheel.topics import PREDICTIONS_LOG
from predictor.app import create_app
from predictor.auth import ApiKeyring
from predictor.batch import BatchPredictions
from predictor.cache import PredictionCache, RedisGate
from predictor.config import Settings
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.online import EntityStore, OnlineFeatureSync
from predictor.prediction_log import PredictionLogSender
from predictor.serving import Predictor, heartbeat_gauges
from predictor.sources import CachedModelSource
from predictor.store import ModelStore, PublishedFollower
from predictor.task_watch import TaskWatch

__all__ = ["PredictorService"]

log = logging.getLogger(__name__)

# predictions.log (and offline batch results) are read by no one's hot path, while
# every produce request costs this process CPU between predictions: at 500
# predictions/s, logging one cost ~100 µs of CPU with a 10 ms linger and ~20 µs with
# 100 ms (bench/predictor_log_cost.py).
PRODUCER_LINGER_MS = 100


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # flywheel.lifecycle owns SIGTERM/SIGINT and calls stop(); uvicorn must not.
        yield


class PredictorService:
    name = "predictor"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = PredictorMetrics()
        self._kafka = settings.kafka_config(client_id="flywheel-predictor")
        self._redis_config = RedisConfig(
            url=settings.redis_url,
            socket_timeout_s=settings.predictor_redis_timeout_ms / 1000,
            key_prefix=settings.redis_key_prefix,
            cluster=settings.redis_cluster,
        )
        self.batch_group_id = self._kafka.scoped(settings.predictor_batch_group_id)
        self._producer: AIOKafkaProducer | None = None
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._follower: PublishedFollower | None = None
        self._tasks: TaskWatch | None = None
        self._online: OnlineFeatureSync | None = None
        self._batch: BatchPredictions | None = None
        self._source: CachedModelSource | None = None
        self._store: ModelStore | None = None
        self.predictor: Predictor | None = None
        self.port: int | None = None
        self.heartbeat = HeartbeatPublisher(
            self._kafka,
            self.name,
            instance=settings.instance_id or None,
            interval_s=settings.heartbeat_interval_s,
            gauges=self._gauges,
        )

    def _gauges(self) -> dict[str, float]:
        return {} if self.predictor is None else heartbeat_gauges(self.predictor)

    async def start(self) -> None:
        s = self.settings
        keyring = (
            ApiKeyring.from_file(s.predictor_api_keys_file)
            if s.predictor_api_keys_file is not None
            else ApiKeyring.open()
        )
        redis = connect_redis(self._redis_config)
        keys = RedisKeys(s.redis_key_prefix)
        self._source = CachedModelSource(redis, self._kafka, key_prefix=s.redis_key_prefix)
        gate = RedisGate(
            redis, self.metrics, retry_s=s.predictor_redis_retry_s, on_recovered=self._redis_back
        )
        self._store = store = ModelStore(self._source, self.metrics)
        self._producer = make_producer(self._kafka, linger_ms=PRODUCER_LINGER_MS)
        log_sender = PredictionLogSender(
            self._producer,
            self._kafka.topic(PREDICTIONS_LOG),
            self.metrics,
            max_queue=s.predictor_log_queue_size,
        )
        self.predictor = predictor = Predictor(
            store=store,
            cache=PredictionCache(gate, self.metrics, ttl_s=s.predictor_cache_ttl_s),
            entities=EntityStore(gate, keys),
            log=log_sender,
            keyring=keyring,
            gate=gate,
            metrics=self.metrics,
            keys=keys,
            max_rows=s.predictor_max_rows,
            cache_min_row_cost_us=s.predictor_cache_min_row_cost_us,
        )
        await self._start_http(predictor)
        await wait_for_kafka(self._kafka, timeout_s=s.startup_timeout_s)
        await self._producer.start()
        await gate.check()
        gate.start()
        self._follower = PublishedFollower(self._kafka, store)
        await self._follower.mark()
        self._tasks = TaskWatch(self._kafka, store, self._source)
        await self._tasks.load()
        loaded = await store.load_champions()
        self._follower.follow()
        self._tasks.follow()
        predictor.cache.start()
        log_sender.start()
        if s.predictor_online_features:
            self._online = OnlineFeatureSync(self._kafka, gate, keys, self.metrics)
            await self._online.start()
        if s.predictor_batch_requests:
            self._batch = BatchPredictions(
                self._kafka, predictor, self._producer, group_id=self.batch_group_id
            )
            await self._batch.start()
        await self.heartbeat.start()
        # What start-up built (modules, the app, boosters) lives for the whole process.
        # Freezing it out of the collector's generations keeps full collections, the
        # main source of tail-latency spikes on the predict path, short.
        gc.collect()
        gc.freeze()
        predictor.started = True
        log.info("predictor ready", extra={"port": self.port, "models": loaded})

    async def _start_http(self, predictor: Predictor) -> None:
        config = uvicorn.Config(
            create_app(predictor),
            host=self.settings.predictor_host,
            port=self.settings.predictor_port,
            log_config=None,
            access_log=False,
            # Nothing here reads the client address or scheme, so uvicorn's
            # X-Forwarded-* rewriting would only add a layer to every request.
            proxy_headers=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
        self._server = server = _Server(config)
        self._serving = asyncio.create_task(server.serve(), name="predictor.http")
        while not server.started:
            if self._serving.done():
                self._serving.result()  # re-raise (port in use, ...)
                raise RuntimeError("HTTP server exited during start-up")
            await asyncio.sleep(0.01)
        self.port = server.servers[0].sockets[0].getsockname()[1]

    async def _redis_back(self) -> None:
        retired = frozenset(self._store.retired()) if self._store is not None else frozenset()
        if self._source is not None and await self._source.rebuild_if_empty(skip=retired):
            log.warning("redis came back empty; model cache rebuilt from the registry")
        if self._tasks is not None:
            self._tasks.on_redis_back()
        if self._online is not None:
            await self._online.redis_recovered()

    async def run(self) -> None:
        if self._serving is not None:
            await asyncio.shield(self._serving)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            # In-flight requests finish (and queue their log entries) before we drain.
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._serving
        await self.heartbeat.stop()
        if self._batch is not None:
            await self._batch.stop()
        if self._follower is not None:
            await self._follower.stop()
        if self._tasks is not None:
            await self._tasks.stop()
        if self._online is not None:
            await self._online.stop()
        if self.predictor is not None:
            await self.predictor.log.stop()
            await self.predictor.cache.stop()
            await self.predictor.gate.stop()
            await self.predictor.gate.redis.aclose()
        if self._source is not None:
            await self._source.stop()
        if self._producer is not None:
            await self._producer.stop()
