"""The Redis key layout and client choice that make Flywheel run on a Redis Cluster."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import ModelCache
from flywheel.settings import ServiceSettings


def _cache() -> ModelCache:
    # Never connected: key construction needs no server.
    return ModelCache(connect_redis(RedisConfig()), key_prefix="fw:")


def test_a_tasks_model_keys_carry_the_task_as_hash_tag() -> None:
    cache = _cache()
    assert cache.champion_key("fraud.v2") == "fw:champion:{fraud.v2}"
    assert cache.model_key("fraud.v2", 12) == "fw:model:{fraud.v2}:12"


def test_a_tasks_keys_share_a_slot_and_tasks_spread_over_slots() -> None:
    cache = _cache()
    tasks = [f"task-{i}" for i in range(20)]
    for task in tasks:
        slot = key_slot(cache.champion_key(task).encode())
        assert {key_slot(cache.model_key(task, v).encode()) for v in (1, 2, 999)} == {slot}
    assert len({key_slot(cache.champion_key(t).encode()) for t in tasks}) == len(tasks)


@pytest.mark.parametrize(("value", "cluster"), [("true", True), ("false", False), ("", False)])
def test_the_cluster_client_is_chosen_by_configuration(
    monkeypatch: pytest.MonkeyPatch, value: str, cluster: bool
) -> None:
    monkeypatch.setenv("FLYWHEEL_REDIS_CLUSTER", value)
    config = ServiceSettings().redis_config()
    assert config.cluster is cluster
    client = connect_redis(config)
    assert isinstance(client, aioredis.RedisCluster) is cluster
    assert isinstance(client, aioredis.Redis) is not cluster


def test_a_non_boolean_cluster_setting_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLYWHEEL_REDIS_CLUSTER", "maybe")
    with pytest.raises(ValueError, match="redis_cluster"):
        ServiceSettings()
