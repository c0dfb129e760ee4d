"""In-memory stand-ins behind the predictor's interfaces (unit tests only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Container
from fnmatch import fnmatchcase
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from flywheel.events import ModelVersion
from predictor.app import create_app
from predictor.auth import ApiKeyring
from predictor.cache import PredictionCache, RedisGate
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.online import EntityStore
from predictor.prediction_log import PredictionLogSender
from predictor.serving import Predictor
from predictor.sources import Champion
from predictor.store import ModelStore


class FakeSource:
    def __init__(self, *versions: ModelVersion) -> None:
        self.versions = {(v.task, v.version): v for v in versions}
        # Champions as Redis holds them; the registry's are what it was given last.
        self.champion: dict[str, int] = {v.task: v.version for v in versions}
        self.registry: dict[str, int] = dict(self.champion)
        self.forgotten: list[str] = []

    def add(self, version: ModelVersion) -> None:
        self.versions[(version.task, version.version)] = version

    async def champions(self, skip: Container[str] = frozenset()) -> list[Champion]:
        return [Champion(t, v) for t, v in sorted(self.champion.items()) if t not in skip]

    async def fetch(self, task: str, version: int) -> ModelVersion | None:
        return self.versions.get((task, version))

    async def registry_champion(self, task: str) -> ModelVersion | None:
        number = self.registry.get(task)
        return None if number is None else self.versions.get((task, number))

    async def forget(self, task: str) -> bool:
        self.champion.pop(task, None)
        self.forgotten.append(task)
        return True

    async def recache(self, version: ModelVersion) -> bool:
        self.champion[version.task] = version.version
        return True


class _Pipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self._redis = redis
        self._ops: list[tuple[str, bytes | None]] = []

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def set(self, key: str, value: bytes, ex: int | None = None) -> None:
        self._ops.append((key, value))

    def mset(self, values: dict[str, bytes]) -> None:
        self._ops.extend(values.items())

    def delete(self, *keys: str) -> None:
        self._ops.extend((key, None) for key in keys)

    async def execute(self) -> list[bool]:
        self._redis.check()
        for key, value in self._ops:
            if value is None:
                self._redis.data.pop(key, None)
            else:
                self._redis.data[key] = value
        return [True] * len(self._ops)


class FakeRedis:
    """The few commands the predictor uses; ``down = True`` makes every call fail."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.down = False

    def check(self) -> None:
        if self.down:
            raise RedisConnectionError("Connection refused (fake)")

    async def ping(self) -> bool:
        self.check()
        return True

    async def get(self, key: str) -> bytes | None:
        self.check()
        return self.data.get(key)

    async def set(self, key: str, value: bytes, ex: int | None = None) -> bool:
        self.check()
        self.data[key] = value
        return True

    async def mset(self, values: dict[str, bytes]) -> bool:
        self.check()
        self.data.update(values)
        return True

    async def delete(self, *keys: str) -> int:
        self.check()
        return sum(self.data.pop(key, None) is not None for key in keys)

    async def exists(self, key: str) -> int:
        self.check()
        return int(key in self.data)

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self)

    async def scan_iter(self, match: str = "*", count: int = 100) -> AsyncIterator[bytes]:
        self.check()
        for key in list(self.data):
            if fnmatchcase(key, match):
                yield key.encode()

    async def aclose(self) -> None:
        return None


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def make_predictor(
    *versions: ModelVersion,
    redis: FakeRedis | None = None,
    keyring: ApiKeyring | None = None,
    cache_ttl_s: int = 60,
    producer: FakeProducer | None = None,
    source: FakeSource | None = None,
) -> tuple[Predictor, Any]:
    """A started-looking Predictor over fakes, and its FastAPI app."""
    metrics = PredictorMetrics()
    fake = redis or FakeRedis()
    gate = RedisGate(fake, metrics, retry_s=0.05)  # type: ignore[arg-type]
    await gate.check()
    store = ModelStore(source or FakeSource(*versions), metrics)
    await store.load_champions()
    keys = RedisKeys("t:")
    predictor = Predictor(
        store=store,
        cache=PredictionCache(gate, metrics, ttl_s=cache_ttl_s),
        entities=EntityStore(gate, keys),
        log=PredictionLogSender(producer, "predictions.log", metrics, max_queue=1_000),  # type: ignore[arg-type]
        keyring=keyring or ApiKeyring.open(),
        gate=gate,
        metrics=metrics,
        keys=keys,
        max_rows=1_000,
        started=True,
    )
    return predictor, create_app(predictor)


def sample(metrics: PredictorMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
