"""Redis on the hot path: a health gate and the prediction cache.

Redis is a cache, never a dependency of a prediction whose model is loaded. The
:class:`RedisGate` remembers that Redis failed and keeps the hot path off it until a
background probe sees it answer again, so an outage costs at most one fast error
per probe interval and no request waits on a dead socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from flywheel.redis import RedisClient
from predictor.metrics import PredictorMetrics

__all__ = ["PredictionCache", "RedisGate", "features_digest"]

log = logging.getLogger(__name__)

MAX_PENDING_WRITES = 10_000


class RedisGate:
    def __init__(
        self,
        redis: RedisClient,
        metrics: PredictorMetrics,
        *,
        retry_s: float,
        on_recovered: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self._metrics = metrics
        self._retry_s = retry_s
        self._on_recovered = on_recovered
        self.up = False
        self._probe: asyncio.Task[None] | None = None

    def failed(self, exc: BaseException) -> None:
        if self.up:
            log.warning("redis unavailable; serving without it: %s", exc)
        self.up = False
        self._metrics.redis_up.set(0)

    async def check(self) -> bool:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            self.failed(exc)
            return False
        if not self.up:
            self.up = True
            self._metrics.redis_up.set(1)
            log.info("redis answers")
            if self._on_recovered is not None:
                # Redis may have come back empty (restart without persistence).
                try:
                    await self._on_recovered()
                except Exception:
                    log.exception("recovery after redis came back failed")
        return True

    def start(self) -> None:
        self._probe = asyncio.create_task(self._run(), name="redis.probe")

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._retry_s if not self.up else max(self._retry_s, 1.0))

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


def features_digest(features: Any) -> str:
    # Sorted keys: the same features in any order are the same prediction.
    return hashlib.blake2b(
        orjson.dumps(features, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


class PredictionCache:
    """Scored rows cached by (task, version, hash of features) for ``ttl_s`` seconds.

    Reads are awaited (a hit replaces scoring); writes are queued and pipelined by a
    background task so a miss never pays for the write.
    """

    def __init__(self, gate: RedisGate, metrics: PredictorMetrics, *, ttl_s: int) -> None:
        self._gate = gate
        self._metrics = metrics
        self._ttl_s = ttl_s
        self._pending: deque[tuple[str, bytes]] = deque(maxlen=MAX_PENDING_WRITES)
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._ttl_s > 0

    async def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        if not self._gate.up:
            self._metrics.cache.labels("skipped").inc()
            return None
        try:
            raw = await self._gate.redis.get(key)
        except (RedisError, OSError) as exc:
            self._gate.failed(exc)
            self._metrics.cache.labels("error").inc()
            return None
        if raw is None:
            self._metrics.cache.labels("miss").inc()
            return None
        self._metrics.cache.labels("hit").inc()
        cached: dict[str, Any] = orjson.loads(raw)
        return cached

    def put(self, key: str, result: dict[str, Any]) -> None:
        if not self.enabled or not self._gate.up:
            return
        self._pending.append((key, orjson.dumps(result)))
        self._wake.set()

    def start(self) -> None:
        if self.enabled:
            self._writer = asyncio.create_task(self._write_loop(), name="prediction-cache.writer")

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        try:
            async with self._gate.redis.pipeline(transaction=False) as pipe:
                for key, value in batch:
                    pipe.set(key, value, ex=self._ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Losing cache writes is harmless: the next request scores again.
            self._gate.failed(exc)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
