"""The trainer service in-process against the real broker and Redis."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import redis.asyncio as aioredis

from flywheel.catalog import apply_tasks, delete_task
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.redis import RedisConfig
from flywheel.registry import ModelCache
from flywheel.topics import TRAINING_BATCHES
from tests.integration.heartbeats import wait_for_heartbeat
from trainer.service import TrainerService

from ...unit.trainer.streams import make_batch, make_task
from .helpers import (
    publish_batches,
    read_announcements,
    registry_snapshot,
    trainer_settings,
    wait_for_events_trained,
)

pytestmark = pytest.mark.integration


async def test_batches_become_versions_champions_and_cached_models(
    kafka: KafkaConfig, redis_config: RedisConfig, redis_client: aioredis.Redis
) -> None:
    task = make_task()
    await apply_tasks(kafka, [task])
    rng = np.random.default_rng(11)
    batches = [make_batch(rng, i, 200) for i in range(6)]

    settings = trainer_settings(kafka, redis_config)
    service = TrainerService(settings)
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        await publish_batches(kafka, batches[:3])
        await asyncio.sleep(1.0)
        await publish_batches(kafka, batches[3:])
        await _publish_broken_batch(kafka, task.name)
        registry = await wait_for_events_trained(kafka, {task.name: 1_200})
        versions = registry.versions(task.name)
        assert versions[-1].events_trained == 1_200  # every event counted exactly once
        champion = registry.champion(task.name)
        assert champion is not None
        assert "accuracy" in champion.metrics or champion.version == 1
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"http://127.0.0.1:{service.port}/healthz")).text
        assert "flywheel_trainer_events_trained" in body
        cached = await ModelCache(redis_client, key_prefix=redis_config.key_prefix).load_champion(
            task.name
        )
        assert cached is not None and cached.version == champion.version
        # Its heartbeat: 7 batches settled (one dead-lettered), the champion's size.
        beat = await wait_for_heartbeat(
            kafka, "trainer", lambda b: b.gauges.get("requests_total") == 7
        )
        assert beat.gauges["request_errors_total"] == 1
        assert beat.gauges["events_trained_total"] == 1_200
        assert beat.gauges["tasks_owned"] == 1
        assert beat.gauges["model_trees"] == champion.trees
        assert beat.gauges["model_bytes"] == len(champion.model_text)
        assert beat.rss_bytes > 0
    finally:
        await service.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    announced = await read_announcements(kafka)
    assert announced and announced[-1].version == champion.version
    assert all(a.trained_through is not None for a in announced)

    # A restart continues from the registry, refills the replay window from the
    # already-learned batches, and counts nothing twice.
    restarted = TrainerService(settings)
    await restarted.start()
    runner = asyncio.create_task(restarted.run())
    try:
        await publish_batches(kafka, [make_batch(rng, 6, 200)])
        registry = await wait_for_events_trained(kafka, {task.name: 1_400})
        assert registry.versions(task.name)[-1].events_trained == 1_400
        learner = restarted.learners[task.name]
        assert len(learner.window) == 1_400  # 1,200 replayed + the new batch
    finally:
        await restarted.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    # Deleted: the predictors removed its Redis keys, and a restarted trainer leaves
    # them out; a batch still in training.batches is dead-lettered, not learned.
    await delete_task(kafka, task.name)
    keys = [k async for k in redis_client.scan_iter(match=redis_config.key_prefix + "*")]
    await redis_client.delete(*keys)
    cache = ModelCache(redis_client, key_prefix=redis_config.key_prefix)
    versions_before = len(registry.versions(task.name))
    after_delete = TrainerService(settings)
    await after_delete.start()
    runner = asyncio.create_task(after_delete.run())
    try:
        assert await cache.champion_version(task.name) is None
        await publish_batches(kafka, [make_batch(rng, 7, 200)])
        deadline = asyncio.get_running_loop().time() + 20
        while after_delete.batches_total < 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        assert after_delete.batches_total == after_delete.batch_errors_total == 1
    finally:
        await after_delete.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    registry = await registry_snapshot(kafka)
    assert len(registry.versions(task.name)) == versions_before
    assert registry.versions(task.name)[-1].events_trained == 1_400
    assert [k async for k in redis_client.scan_iter(match=redis_config.key_prefix + "*")] == []


async def _publish_broken_batch(kafka: KafkaConfig, task: str) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(kafka.topic(TRAINING_BATCHES), b"{not json", key=task.encode())
    finally:
        await producer.stop()
