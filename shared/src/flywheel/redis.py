"""Redis helpers. Redis is a cache in Flywheel: everything in it can be rebuilt from Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flywheel.errors import DependencyUnavailable

__all__ = ["RedisClient", "RedisConfig", "connect_redis", "wait_for_redis"]

# Every Flywheel key command works on both: multi-key commands either stay in one
# hash slot (a task's model keys, see ModelCache) or go through a non-transactional
# pipeline, which the cluster client splits by node.
RedisClient: TypeAlias = aioredis.Redis | aioredis.RedisCluster


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:16379/0"
    socket_timeout_s: float = 1.0
    key_prefix: str = "flywheel:"
    # ``url`` names one node of a Redis Cluster: the client discovers the others
    # and routes each key to the node owning its slot.
    cluster: bool = False


def connect_redis(config: RedisConfig) -> RedisClient:
    """A client for ``config.url``; it connects lazily on the first command."""
    options: dict[str, Any] = {
        "socket_timeout": config.socket_timeout_s,
        "socket_connect_timeout": config.socket_timeout_s,
        "decode_responses": False,
    }
    if config.cluster:
        cluster: aioredis.RedisCluster = aioredis.RedisCluster.from_url(config.url, **options)
        return cluster
    client: aioredis.Redis = aioredis.Redis.from_url(config.url, **options)
    return client


async def wait_for_redis(config: RedisConfig, *, timeout_s: float = 30.0) -> None:
    """Return once Redis answers PING; raise :class:`DependencyUnavailable` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.05
    last_error: Exception | None = None
    client = connect_redis(config)
    try:
        while loop.time() < deadline:
            try:
                if await client.ping():
                    return
            except (RedisError, OSError) as exc:
                last_error = exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    finally:
        await client.aclose()
    raise DependencyUnavailable(
        f"Redis at {config.url} did not answer within {timeout_s:.0f}s: {last_error}"
    )
