"""Fixtures for the trainer's integration tests: a private topic namespace and Redis prefix."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig, connect_redis, wait_for_redis


@pytest.fixture
def kafka(kafka_namespace: KafkaConfig) -> KafkaConfig:
    """All Flywheel topics under a private prefix, deleted after the test."""
    return kafka_namespace


@pytest.fixture
async def redis_config() -> AsyncIterator[RedisConfig]:
    config = RedisConfig(
        url=os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0"),
        key_prefix=f"test:{uuid4().hex[:10]}:",
    )
    await wait_for_redis(config, timeout_s=10)
    yield config
    client = connect_redis(config)
    try:
        keys = [k async for k in client.scan_iter(match=config.key_prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_client(redis_config: RedisConfig) -> AsyncIterator[aioredis.Redis]:
    client = connect_redis(redis_config)
    yield client
    await client.aclose()
