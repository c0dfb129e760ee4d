"""Where the predictor gets models: Redis first, the ``models.registry`` topic behind it.

Kafka is the source of truth and Redis a cache (ARCHITECTURE.md). The layout and the
registry reader are the shared :mod:`flywheel.registry`; this module adds the
predictor's policy on top:

* champions come from Redis; when Redis holds none at all (flushed, or a fresh
  Redis) they are rebuilt there from the registry topic;
* a version missing from Redis, or whose cached text fails its hash check, is read
  from the registry topic;
* with Redis unreachable, everything is answered from the registry topic, so models
  still load while Redis is down;
* a deleted task's champion and model keys are removed from Redis (:meth:`forget`;
  the registry keeps its history), and written back if the task is re-applied with
  a compatible definition (:meth:`recache`).
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from flywheel.errors import ModelIntegrityError
from flywheel.events import ModelVersion
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisClient
from flywheel.registry import ModelCache, ModelRegistry, rebuild_cache

__all__ = ["CachedModelSource", "Champion", "ModelSource"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Champion:
    task: str
    version: int


class ModelSource(Protocol):
    """What the model store needs: the champions, and a version's record."""

    async def champions(self, skip: Container[str] = frozenset()) -> list[Champion]:
        """Every champion; ``skip``: deleted tasks, never written back to a rebuilt cache."""
        ...

    async def fetch(self, task: str, version: int) -> ModelVersion | None: ...

    async def registry_champion(self, task: str) -> ModelVersion | None: ...

    async def forget(self, task: str) -> bool: ...

    async def recache(self, version: ModelVersion) -> bool: ...


class CachedModelSource:
    """Redis-cached models (:class:`ModelCache`), backed by the registry topic."""

    def __init__(self, redis: RedisClient, kafka: KafkaConfig, *, key_prefix: str) -> None:
        self._cache = ModelCache(redis, key_prefix=key_prefix)
        self._kafka = kafka
        self._registry: ModelRegistry | None = None

    async def registry(self) -> ModelRegistry:
        """The registry read to its current end (loaded on first use, then caught up)."""
        if self._registry is None:
            registry = ModelRegistry(self._kafka)
            await registry.start(follow=False)
            self._registry = registry
        else:
            await self._registry.catch_up()
        return self._registry

    async def champions(self, skip: Container[str] = frozenset()) -> list[Champion]:
        try:
            found = await self._cache.champions()
            if not found:
                return await self.rebuild(skip)
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable; reading champions from the registry: %s", exc)
            return await self._registry_champions()
        return [Champion(task, version) for task, version in sorted(found.items())]

    async def _registry_champions(self) -> list[Champion]:
        registry = await self.registry()
        champions = []
        for task in registry.tasks():
            version = registry.champion_version(task)
            if version is not None:
                champions.append(Champion(task, version))
        return champions

    async def rebuild(self, skip: Container[str] = frozenset()) -> list[Champion]:
        """Redis holds no champion: write them all from the registry topic, but those of
        the deleted tasks in ``skip``."""
        registry = await self.registry()
        await rebuild_cache(registry, self._cache, skip=skip)
        return await self._registry_champions()

    async def rebuild_if_empty(self, skip: Container[str] = frozenset()) -> bool:
        """After Redis came back: rebuild it if it came back empty. True if rebuilt."""
        if await self._cache.has_champions():
            return False
        await self.rebuild(skip)
        return True

    async def fetch(self, task: str, version: int) -> ModelVersion | None:
        try:
            cached = await self._cache.load(task, version)
        except ModelIntegrityError as exc:
            log.error("cached model failed its hash check; using the registry: %s", exc)
            cached = None
        except (RedisError, OSError) as exc:
            log.warning(
                "redis unavailable; reading %s v%d from the registry: %s", task, version, exc
            )
            cached = None
        if cached is not None:
            return cached
        # Not cached (flushed, expired, or announced before it was cached).
        return (await self.registry()).version(task, version)

    async def registry_champion(self, task: str) -> ModelVersion | None:
        """The task's champion as the registry topic records it (None if none or retired)."""
        return (await self.registry()).champion(task)

    async def forget(self, task: str) -> bool:
        """Remove the task's champion and model keys from Redis; False if Redis failed.

        Every replica does it when it sees the deletion: deleting is idempotent.
        """
        try:
            await self._cache.forget(task)
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable; %s's model keys not removed yet: %s", task, exc)
            return False
        return True

    async def recache(self, version: ModelVersion) -> bool:
        """Make ``version`` the task's champion in Redis again; False if Redis failed."""
        try:
            await self._cache.set_champion(version)
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable; %s's champion not cached: %s", version.task, exc)
            return False
        return True

    async def stop(self) -> None:
        if self._registry is not None:
            await self._registry.stop()
            self._registry = None
