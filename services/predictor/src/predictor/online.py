"""Online features: entity features pushed as events, kept in Redis, joined at predict time.

``features.online`` (compacted, key ``task:entity``) is the source of truth. Each
predictor copies it into Redis (``flywheel:entity:{task}:{entity}``): from the
beginning at start-up, then following new records. Copies are idempotent (the latest
record per key wins, as in the compacted topic), so replicas may all do it. When
Redis comes back empty the copy starts again from the beginning. A tombstone (null
value) deletes the entity's key: a deleted entity's features are no longer joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import RedisError

from flywheel import serde
from flywheel.errors import FlywheelError
from flywheel.events import EntityFeatures
from flywheel.kafka import KafkaConfig, make_consumer
from flywheel.tasks import TASK_NAME_PATTERN
from flywheel.topics import ONLINE_FEATURES
from predictor.cache import RedisGate
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.partitions import assign_all_partitions

__all__ = ["EntityStore", "OnlineFeatureSync", "OnlineFeaturesUnavailable"]

log = logging.getLogger(__name__)

_TASK_NAME = re.compile(TASK_NAME_PATTERN)


class OnlineFeaturesUnavailable(FlywheelError):
    """An entity's features were asked for while Redis does not answer."""


class EntityStore:
    """Reads an entity's stored features for the hot path."""

    def __init__(self, gate: RedisGate, keys: RedisKeys) -> None:
        self._gate = gate
        self._keys = keys

    async def get(self, task: str, entity_id: str) -> dict[str, Any]:
        """The entity's features ({} if none were pushed); raises if Redis is down."""
        if not self._gate.up:
            raise OnlineFeaturesUnavailable("online features unavailable: redis is down")
        try:
            raw = await self._gate.redis.get(self._keys.entity(task, entity_id))
        except (RedisError, OSError) as exc:
            self._gate.failed(exc)
            raise OnlineFeaturesUnavailable(f"online features unavailable: {exc}") from exc
        if raw is None:
            return {}
        features: dict[str, Any] = orjson.loads(raw)["features"]
        return features


class OnlineFeatureSync:
    """Copies ``features.online`` into Redis and keeps following it."""

    def __init__(
        self, config: KafkaConfig, gate: RedisGate, keys: RedisKeys, metrics: PredictorMetrics
    ) -> None:
        self._config = config
        self._gate = gate
        self._keys = keys
        self._metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._restart = False

    async def start(self) -> None:
        consumer = make_consumer(self._config, group_id=None)
        await consumer.start()
        try:
            self._tps = await assign_all_partitions(consumer, self._config.topic(ONLINE_FEATURES))
            await consumer.seek_to_beginning(*self._tps)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="features.online")

    async def redis_recovered(self) -> None:
        """Called when Redis answers again: re-copy everything if it came back empty."""
        if not await self._gate.redis.exists(self._keys.online_synced()):
            self._restart = True

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        ends = await consumer.end_offsets(self._tps)
        caught_up = all(ends[tp] == 0 for tp in self._tps)
        while True:
            if self._restart:
                self._restart = False
                await consumer.seek_to_beginning(*self._tps)
                ends = await consumer.end_offsets(self._tps)
                caught_up = False
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=2_000)
            except Exception:
                log.exception("features.online read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            records = [r for batch in batches.values() for r in batch]
            if records:
                await self._write(records)
            if not caught_up:
                positions = [await consumer.position(tp) for tp in self._tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, self._tps, strict=True)):
                    caught_up = await self._mark_synced()

    async def _write(self, records: list[Any]) -> None:
        # The latest record per key wins within a batch, as in the compacted topic:
        # None is a tombstone (delete the key), bytes the entity's new features.
        latest: dict[str, bytes | None] = {}
        for record in records:
            if record.value is None:
                key = self._tombstoned_key(record)
                if key is not None:
                    latest[key] = None
                continue
            try:
                event = serde.decode(EntityFeatures, record.value)
            except FlywheelError as exc:
                # The record stays in the topic; the error says which one and why.
                log.error(
                    "unreadable features.online record skipped",
                    extra={
                        "partition": record.partition,
                        "offset": record.offset,
                        "error": str(exc),
                    },
                )
                continue
            latest[self._keys.entity(event.task, event.entity_id)] = orjson.dumps(
                {"features": event.features, "at": event.at.isoformat()}
            )
        values = {k: v for k, v in latest.items() if v is not None}
        deleted = [k for k, v in latest.items() if v is None]
        delay = 0.1
        # Retried until Redis takes them: skipping would leave stale entity features.
        while values or deleted:
            try:
                # One command per key, not MSET/DEL of many: on a Redis Cluster the
                # entities spread over slots, and the client splits a pipeline by node.
                async with self._gate.redis.pipeline(transaction=False) as pipe:
                    for key, value in values.items():
                        pipe.set(key, value)
                    for key in deleted:
                        pipe.delete(key)
                    await pipe.execute()
                self._metrics.online_updates.inc(len(latest))
                return
            except (RedisError, OSError) as exc:
                self._gate.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _tombstoned_key(self, record: Any) -> str | None:
        """The Redis key a tombstone deletes (its Kafka key is ``task:entity``)."""
        raw = record.key.decode("utf-8", "replace") if record.key is not None else ""
        task, sep, entity_id = raw.partition(":")
        if not sep or _TASK_NAME.match(task) is None or not entity_id:
            log.error(
                "features.online tombstone without a task:entity key skipped",
                extra={"partition": record.partition, "offset": record.offset, "key": raw[:200]},
            )
            return None
        return self._keys.entity(task, entity_id)

    async def _mark_synced(self) -> bool:
        try:
            await self._gate.redis.set(self._keys.online_synced(), b"1")
        except (RedisError, OSError) as exc:
            self._gate.failed(exc)
            return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
