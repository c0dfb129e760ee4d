"""Two deployments on one cluster: trainers with different topic prefixes never meet.

Both run with the default group id and transactional-id stem, as two real deployments
would. Kafka's group namespace is cluster-wide, so without scoping by the prefix they
would join one group with the local stack's own trainer (checked: 3 members), and every
join, leave or crash of any of them would stop all three for a rebalance. With it,
each is alone in a group of its own, owns every partition of its own
``training.batches``, and commits its own transactions (neither is fenced).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from flywheel.catalog import apply_tasks
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig
from flywheel.topics import TRAINING_BATCHES
from trainer.config import Settings
from trainer.service import TrainerService

from ...unit.trainer.streams import make_batch, make_task
from .helpers import publish_batches, wait_for_events_trained

pytestmark = pytest.mark.integration


async def _describe(admin: AIOKafkaAdminClient, group: str) -> dict[str, Any]:
    [response] = await admin.describe_consumer_groups([group])
    described: dict[str, Any] = response.to_object()["groups"][0]
    return described


async def _running(kafka: KafkaConfig, redis_config: RedisConfig) -> TrainerService:
    service = TrainerService(
        Settings(
            kafka_bootstrap_servers=kafka.bootstrap_servers,
            topic_prefix=kafka.topic_prefix,
            redis_url=redis_config.url,
            redis_key_prefix=redis_config.key_prefix + kafka.topic_prefix,
            trainer_port=0,
            startup_timeout_s=20,
        )
    )
    await service.start()
    return service


@pytest.fixture
async def admin(kafka_config: KafkaConfig) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=kafka_config.bootstrap_servers, client_id="flywheel-tests"
    )
    await client.start()
    yield client
    await client.close()


async def test_trainers_of_two_prefixes_keep_their_own_groups_and_partitions(
    kafka_namespace: KafkaConfig,
    other_kafka_namespace: KafkaConfig,
    redis_config: RedisConfig,
    admin: AIOKafkaAdminClient,
) -> None:
    deployments = [kafka_namespace, other_kafka_namespace]
    task = make_task()
    for kafka in deployments:
        await apply_tasks(kafka, [task])
    services: list[TrainerService] = []
    runners: list[asyncio.Task[None]] = []
    try:
        for kafka in deployments:
            services.append(await _running(kafka, redis_config))
            runners.append(asyncio.create_task(services[-1].run()))
        groups = [service.group_id for service in services]
        assert groups == [kafka.scoped("flywheel-trainer") for kafka in deployments]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not all(s.heartbeat_gauges()["partitions_owned"] == 6 for s in services):
            assert loop.time() < deadline, [s.heartbeat_gauges() for s in services]
            await asyncio.sleep(0.2)
        for group in groups:
            described = await _describe(admin, group)
            assert described["state"] == "Stable"
            assert len(described["members"]) == 1, described
        # Each member's subscription names its own deployment's topic only.
        for kafka, group in zip(deployments, groups, strict=True):
            [member] = (await _describe(admin, group))["members"]
            assert kafka.topic(TRAINING_BATCHES).encode() in member["member_assignment"]

        # Distinct transactional ids: both trainers commit their own updates.
        rng = np.random.default_rng(3)
        for kafka in deployments:
            await publish_batches(kafka, [make_batch(rng, 0, 100)])
        for kafka in deployments:
            registry = await wait_for_events_trained(kafka, {task.name: 100}, timeout_s=15)
            assert registry.versions(task.name)[-1].events_trained == 100
    finally:
        for service in services:
            await service.stop()
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
