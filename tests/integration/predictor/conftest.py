"""Fixtures for the predictor's integration tests: a real service on a free port.

Each test gets a private topic namespace (``kafka_namespace``), a private Redis key
prefix and a fresh batch consumer group; models are real LightGBM models trained in
the test and published the way the trainer does (registry records, Redis cache,
``models.published`` announcement).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from uuid import uuid4

import httpx
import pytest
import redis.asyncio as aioredis

from flywheel.events import ModelVersion
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import (
    ModelCache,
    RegistryView,
    announcement,
    champion_change,
    publish_registry_records,
)
from predictor.config import Settings
from predictor.service import PredictorService


@dataclass
class ModelPublisher:
    """Publishes model versions like the trainer: registry, then Redis, then announcement."""

    kafka: KafkaConfig
    cache: ModelCache | None
    view: RegistryView

    async def publish(self, version: ModelVersion, *, cache: bool = True) -> None:
        change = champion_change(
            self.view, version.task, version.version, kind="promotion", reason="test promotion"
        )
        self.view.add(version)
        self.view.add(change)
        await publish_registry_records(self.kafka, [version, change])
        if cache and self.cache is not None:
            await self.cache.set_champion(version)
        await publish_registry_records(self.kafka, [], announce=announcement(version))


StartService = Callable[..., Awaitable[PredictorService]]


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid4().hex[:10]}:"


@pytest.fixture
async def redis_client(
    redis_config: RedisConfig, redis_prefix: str
) -> AsyncIterator[aioredis.Redis]:
    client = connect_redis(redis_config)
    yield client
    keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def publisher(
    kafka_namespace: KafkaConfig, redis_client: aioredis.Redis, redis_prefix: str
) -> ModelPublisher:
    return ModelPublisher(
        kafka_namespace, ModelCache(redis_client, key_prefix=redis_prefix), RegistryView()
    )


@pytest.fixture
async def start_service(
    kafka_namespace: KafkaConfig, redis_config: RedisConfig, redis_prefix: str
) -> AsyncIterator[StartService]:
    started: list[PredictorService] = []

    async def start(**overrides: object) -> PredictorService:
        settings = Settings(
            KAFKA_BOOTSTRAP_SERVERS=kafka_namespace.bootstrap_servers,
            REDIS_URL=overrides.pop("redis_url", redis_config.url),
            topic_prefix=kafka_namespace.topic_prefix,
            redis_key_prefix=redis_prefix,
            predictor_port=0,
            predictor_redis_retry_s=0.2,
            startup_timeout_s=30,
            **overrides,
        )
        # The batch group follows the namespace's prefix: private to this test.
        service = PredictorService(settings)
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        await service.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def client_for(service: PredictorService) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10)
