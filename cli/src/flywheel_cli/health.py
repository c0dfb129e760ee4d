"""One-shot health probes: does the component answer its own protocol right now?

An open port is not health: a JVM listens well before the broker serves metadata,
and a wedged Redis still accepts connections. Each probe speaks the protocol and is
bounded by a timeout, so ``status`` never hangs on a stuck component.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from flywheel_cli.config import LOOPBACK
from flywheel_cli.processes import ComponentRecord, is_running, listener_pid, port_open

__all__ = [
    "ComponentStatus",
    "Health",
    "http_health",
    "kafka_health",
    "kafka_health_async",
    "probe",
    "redis_health",
    "shown_pid",
]


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    detail: str


async def kafka_health_async(bootstrap: str, *, timeout_s: float = 5.0) -> Health:
    """Healthy when the cluster answers a metadata request (listing topics)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="flywheel-stack-status",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            topics = await admin.list_topics()
    except (KafkaError, OSError, TimeoutError) as exc:
        return Health(False, f"no metadata from {bootstrap}: {type(exc).__name__} {exc}".strip())
    finally:
        await admin.close()
    user_topics = [name for name in topics if not name.startswith("__")]
    return Health(True, f"{len(user_topics)} topics")


def kafka_health(bootstrap: str, *, timeout_s: float = 5.0) -> Health:
    return asyncio.run(kafka_health_async(bootstrap, timeout_s=timeout_s))


def redis_health(url: str, *, timeout_s: float = 2.0) -> Health:
    """Healthy when Redis answers PING."""
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        if client.ping():
            return Health(True, "PONG")
        return Health(False, "PING not answered")
    except (RedisError, OSError) as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def http_health(url: str, *, timeout_s: float = 2.0) -> Health:
    """Healthy when ``GET url`` answers 2xx."""
    import httpx

    try:
        # trust_env=False: an HTTP(S)_PROXY in the operator's shell must not capture
        # loopback probes.
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return Health(True, f"HTTP {response.status_code}")
    return Health(False, f"HTTP {response.status_code}")


def on_loopback(record: ComponentRecord) -> bool:
    return record.endpoint.startswith((f"{LOOPBACK}:", f"redis://{LOOPBACK}:"))


def probe(record: ComponentRecord, *, timeout_s: float = 5.0) -> Health:
    """The health of one stack component, by its kind."""
    if record.managed and not is_running(record.pid, record.start_ticks):
        return Health(False, "process not running")
    port = record.port
    if port is not None and on_loopback(record) and not port_open(LOOPBACK, port):
        # Cheap and immediate; spares a client library's connect retries.
        return Health(False, f"nothing listens on {LOOPBACK}:{port}")
    if record.kind == "kafka":
        return kafka_health(record.endpoint, timeout_s=timeout_s)
    if record.kind == "redis":
        return redis_health(record.endpoint, timeout_s=min(timeout_s, 2.0))
    if record.health_url:
        return http_health(record.health_url, timeout_s=min(timeout_s, 2.0))
    return Health(True, "process alive")


def shown_pid(record: ComponentRecord) -> int | None:
    """The pid to report: ours if we started it, else whoever listens on its port."""
    if record.managed:
        return record.pid
    if record.port is not None and on_loopback(record):
        return listener_pid(record.port)
    return None


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    record: ComponentRecord
    pid: int | None
    health: Health

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.record.name,
            "kind": self.record.kind,
            "pid": self.pid,
            "port": self.record.port,
            "endpoint": self.record.endpoint,
            "managed": self.record.managed,
            "health": "healthy" if self.health.healthy else "unhealthy",
            "detail": self.health.detail,
            "log": self.record.log,
        }
