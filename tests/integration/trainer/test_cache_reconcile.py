"""Redis losing a champion's keys behind the trainer's back heals within the interval."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis.asyncio as aioredis

from flywheel.catalog import apply_tasks
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig
from flywheel.registry import ModelCache
from trainer.service import TrainerService

from ...unit.trainer.streams import make_batch, make_task
from .helpers import (
    publish_batches,
    read_announcements,
    trainer_settings,
    wait_for_events_trained,
)

pytestmark = pytest.mark.integration


async def test_lost_champion_keys_are_restored_and_reannounced(
    kafka: KafkaConfig, redis_config: RedisConfig, redis_client: aioredis.Redis
) -> None:
    task = make_task(max_trees=10, trees_per_update=5)
    await apply_tasks(kafka, [task])
    settings = trainer_settings(kafka, redis_config, trainer_cache_reconcile_s=0.5)
    cache = ModelCache(redis_client, key_prefix=redis_config.key_prefix)
    service = TrainerService(settings)
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        rng = np.random.default_rng(3)
        await publish_batches(kafka, [make_batch(rng, i, 200) for i in range(2)])
        registry = await wait_for_events_trained(kafka, {task.name: 400}, timeout_s=30)
        champion = registry.champion(task.name)
        assert champion is not None
        announced_before = len(await read_announcements(kafka))

        # One shard restarted empty: the task's keys are gone, nothing else changed.
        lost = [cache.champion_key(task.name), cache.model_key(task.name, champion.version)]
        assert await redis_client.delete(*lost) == 2
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await cache.champion_version(task.name) is None and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert await cache.load_champion(task.name) == champion
        assert await redis_client.ttl(lost[1]) == -1  # the champion's hash does not expire

        announced = await read_announcements(kafka)
        assert len(announced) == announced_before + 1
        assert (announced[-1].version, announced[-1].model_sha256) == (
            champion.version,
            champion.model_sha256,
        )
        repairs = service.metrics.registry.get_sample_value(
            "flywheel_trainer_cache_repairs_total", {"task": task.name}
        )
        assert repairs == 1
    finally:
        await service.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
