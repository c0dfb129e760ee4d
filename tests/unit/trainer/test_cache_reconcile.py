"""The trainer restores champions Redis lost (partly) and re-announces them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from flywheel.events import ModelVersion
from flywheel.registry import ModelCache, champion_change
from trainer.config import Settings
from trainer.service import TrainerService

from .test_deleted_tasks import _champion, _tasks_record


class _Pipeline:
    """Queues calls to :class:`HashRedis` and runs them on execute (no real MULTI)."""

    def __init__(self, redis: HashRedis) -> None:
        self._redis = redis
        self._calls: list[Callable[[], Any]] = []

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        method = getattr(self._redis, "_" + name)
        return lambda *args, **kwargs: self._calls.append(lambda: method(*args, **kwargs))

    async def execute(self) -> list[Any]:
        return [call() for call in self._calls]


class HashRedis:
    """The strings and hashes :class:`ModelCache` writes, and a log of every write."""

    def __init__(self) -> None:
        self.strings: dict[str, bytes] = {}
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.expiring: set[str] = set()
        self.writes: list[str] = []

    def _get(self, key: str) -> bytes | None:
        return self.strings.get(key)

    def _set(self, key: str, value: str, nx: bool = False) -> bool:
        if nx and key in self.strings:
            return False
        self.writes.append(key)
        self.strings[key] = value.encode()
        return True

    def _hget(self, key: str, name: str) -> bytes | None:
        return self.hashes.get(key, {}).get(name.encode())

    def _persist(self, key: str) -> bool:
        self.expiring.discard(key)
        return True

    def _expire(self, key: str, seconds: int) -> bool:
        self.expiring.add(key)
        return True

    async def hset(self, key: str, mapping: dict[str, bytes]) -> int:
        self.writes.append(key)
        self.hashes[key] = {name.encode(): value for name, value in mapping.items()}
        return len(mapping)

    async def get(self, key: str) -> bytes | None:
        return self._get(key)

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(key, {}))

    async def persist(self, key: str) -> bool:
        return self._persist(key)

    async def expire(self, key: str, seconds: int) -> bool:
        return self._expire(key, seconds)

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self)


class AnnouncingTrainer(TrainerService):
    """A trainer whose announcements are kept in a list instead of sent to Kafka."""

    def __init__(self) -> None:
        super().__init__(Settings())
        self.announced: list[tuple[str, int, str]] = []

    async def _announce(
        self, version: ModelVersion, kind: Literal["promotion", "rollback"]
    ) -> None:
        self.announced.append((version.task, version.version, kind))


async def _trainer(*names: str) -> tuple[AnnouncingTrainer, HashRedis, dict[str, ModelVersion]]:
    """A trainer whose registry has a champion per name, all cached in ``HashRedis``."""
    trainer = AnnouncingTrainer()
    redis = HashRedis()
    cache = ModelCache(redis, key_prefix="t:")  # type: ignore[arg-type]
    trainer._cache = cache
    champions = {}
    for seed, name in enumerate(names):
        champion = _champion(name, seed)
        trainer.catalog.apply(*_tasks_record(name, deleted=False))
        trainer.registry.add(champion)
        change = champion_change(
            trainer.registry, name, champion.version, kind="promotion", reason="t"
        )
        trainer.registry.add(change)
        await cache.set_champion(champion)
        champions[name] = champion
    trainer.registry.catch_up = _nothing_new  # type: ignore[method-assign]
    redis.writes.clear()
    return trainer, redis, champions


async def _nothing_new() -> int:
    return 0


def _repairs(trainer: TrainerService, task: str) -> float:
    value = trainer.metrics.registry.get_sample_value(
        "flywheel_trainer_cache_repairs_total", {"task": task}
    )
    return 0.0 if value is None else value


async def test_a_lost_champion_is_restored_and_announced_the_intact_one_untouched() -> None:
    trainer, redis, champions = await _trainer("lost", "kept")
    cache = trainer._cache
    assert cache is not None
    lost = champions["lost"]
    del redis.strings[cache.champion_key("lost")]
    del redis.hashes[cache.model_key("lost", lost.version)]

    assert await trainer.reconcile_cache() == 1
    assert await cache.load_champion("lost") == lost
    assert set(redis.writes) == {cache.champion_key("lost"), cache.model_key("lost", lost.version)}
    assert trainer.announced == [("lost", lost.version, "promotion")]
    assert _repairs(trainer, "lost") == 1 and _repairs(trainer, "kept") == 0

    redis.writes.clear()
    assert await trainer.reconcile_cache() == 0  # nothing left to repair
    assert redis.writes == [] and len(trainer.announced) == 1


async def test_a_lost_model_hash_under_an_intact_pointer_is_restored() -> None:
    trainer, redis, champions = await _trainer("task")
    cache = trainer._cache
    assert cache is not None
    key = cache.model_key("task", champions["task"].version)
    redis.hashes[key][b"meta"] = b'{"model_sha256": "0000"}'  # another model's text
    assert await trainer.reconcile_cache() == 1
    assert redis.writes == [key]
    assert await cache.load_champion("task") == champions["task"]


async def test_a_deleted_task_is_not_resurrected() -> None:
    trainer, redis, _ = await _trainer("gone")
    cache = trainer._cache
    assert cache is not None
    redis.strings.clear()
    redis.hashes.clear()
    trainer.catalog.apply(*_tasks_record("gone", deleted=True))
    assert await trainer.reconcile_cache() == 0
    assert redis.writes == [] and trainer.announced == []


async def test_a_pointer_to_another_version_is_left_to_its_writer() -> None:
    # A champion change newer than this trainer's view (another replica, an operator)
    # or a rollback: the repair must not undo it.
    trainer, redis, champions = await _trainer("task")
    cache = trainer._cache
    assert cache is not None
    redis.strings[cache.champion_key("task")] = str(champions["task"].version + 1).encode()
    assert await trainer.reconcile_cache() == 0
    assert redis.writes == [] and trainer.announced == []


async def test_a_repair_racing_a_promotion_keeps_the_promotion() -> None:
    trainer, redis, champions = await _trainer("task")
    cache = trainer._cache
    assert cache is not None
    old = champions["task"]
    del redis.strings[cache.champion_key("task")]
    # The promotion lands between the check and the write: SET NX keeps it.
    redis.strings[cache.champion_key("task")] = str(old.version + 1).encode()
    assert not await cache.restore(old)
    assert redis.strings[cache.champion_key("task")] == str(old.version + 1).encode()
    assert cache.model_key("task", old.version) in redis.expiring
