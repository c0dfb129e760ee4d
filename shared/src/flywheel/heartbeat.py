"""Service heartbeats: every N seconds, RSS, CPU and a service's own gauges to Kafka.

Any service runs a :class:`HeartbeatPublisher` beside its main loop; the optimizer
reads ``services.heartbeats`` to watch memory, CPU, model sizes and queue depths of
the whole loop from one place. Only the standard library measures the process
(``/proc/self/statm`` for RSS, :func:`os.times` for CPU), so no service gains a
dependency for it.

Gauge names follow the Prometheus label-name rule (``[a-zA-Z_][a-zA-Z0-9_]*``), and
by convention counters end in ``_total`` (the optimizer turns them into rates), e.g.
``{"queue_depth": 12, "model_trees": 180, "requests_total": 5120}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from flywheel import serde
from flywheel.events import Heartbeat
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.topics import HEARTBEATS

__all__ = ["HeartbeatPublisher", "ProcessUsage", "default_instance"]

log = logging.getLogger(__name__)

GaugeSource = Callable[[], dict[str, float]]


def default_instance() -> str:
    """``host:pid``: unique per process, stable for its lifetime."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # No /proc (macOS): the peak RSS is the best the stdlib offers (KiB on Linux,
        # bytes on macOS, where this branch runs).
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass
class ProcessUsage:
    """CPU percent of this process between two calls of :meth:`sample`."""

    clock: Callable[[], float] = time.monotonic
    _last_wall: float | None = field(default=None, init=False)
    _last_cpu: float = field(default=0.0, init=False)

    def sample(self) -> tuple[int, float]:
        """``(rss_bytes, cpu_percent)``; 100 % = one core busy, so it may exceed 100."""
        times = os.times()
        cpu = times.user + times.system
        wall = self.clock()
        percent = 0.0
        if self._last_wall is not None and wall > self._last_wall:
            percent = max(0.0, (cpu - self._last_cpu) / (wall - self._last_wall) * 100.0)
        self._last_wall, self._last_cpu = wall, cpu
        return _rss_bytes(), percent


class HeartbeatPublisher:
    """Publishes a :class:`Heartbeat` to ``services.heartbeats`` every ``interval_s``.

    Pass a started ``producer`` to share the service's own, or let the publisher make
    (and own) one. A failed send is logged and retried at the next beat: a heartbeat
    is a sample, not a fact, so losing one is acceptable and must never stop the service.
    """

    def __init__(
        self,
        config: KafkaConfig,
        service: str,
        *,
        instance: str | None = None,
        interval_s: float = 5.0,
        gauges: GaugeSource | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be positive")
        self._config = config
        self._service = service
        self._instance = instance or default_instance()
        self._interval_s = interval_s
        self._gauges = gauges
        self._producer = producer
        self._owns_producer = producer is None
        self._usage = ProcessUsage()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def build(self) -> Heartbeat:
        """The heartbeat as of now (non-finite gauges are dropped, never sent)."""
        rss, cpu = self._usage.sample()
        gauges: dict[str, float] = {}
        if self._gauges is not None:
            try:
                gauges = {k: float(v) for k, v in self._gauges().items() if math.isfinite(v)}
            except Exception:
                log.exception("heartbeat gauge source failed", extra={"hb_service": self._service})
        return Heartbeat(
            service=self._service,
            instance=self._instance,
            rss_bytes=rss,
            cpu_percent=cpu,
            gauges=gauges,
        )

    async def start(self) -> None:
        if self._producer is None:
            self._producer = make_producer(self._config)
            await self._producer.start()
        self._usage.sample()  # prime the CPU clock so the first beat has a real percent
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat:{self._service}")

    async def publish_once(self) -> None:
        if self._producer is None:
            raise RuntimeError("start() first")
        beat = self.build()
        key = f"{self._service}/{self._instance}".encode()
        await self._producer.send_and_wait(
            self._config.topic(HEARTBEATS), serde.encode(beat), key=key
        )
        self.sent += 1

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.publish_once()
            except (KafkaError, OSError) as exc:
                log.warning("heartbeat not sent: %s", exc, extra={"hb_service": self._service})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_producer and self._producer is not None:
            await self._producer.stop()
            self._producer = None
