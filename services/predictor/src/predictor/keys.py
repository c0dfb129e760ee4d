"""Every Redis key the predictor reads or writes, under one configurable prefix.

Model keys (``{prefix}model:…``, ``{prefix}champion:…``) are the shared
:class:`flywheel.registry.ModelCache` layout; these are the predictor's own. Tests
and side-by-side deployments use their own prefix on one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RedisKeys"]


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "flywheel:"

    def entity(self, task: str, entity_id: str) -> str:
        return f"{self.prefix}entity:{task}:{entity_id}"

    def prediction(self, task: str, version: int, explain: bool, digest: str) -> str:
        return f"{self.prefix}pcache:{task}:{version}:{'x' if explain else 's'}:{digest}"

    def online_synced(self) -> str:
        # Present once the entity features have been copied from Kafka; a Redis that
        # comes back without it was emptied and is refilled from the topic.
        return f"{self.prefix}online:synced"
