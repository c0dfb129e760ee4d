"""Fixtures for every integration test: the running stack, fresh topics, fresh groups.

Where Kafka and Redis come from, first match wins:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` (``make test`` exports the local stack's
   endpoints this way, via ``flywheel stack env``), else the local stack's configured
   ports (``FLYWHEEL_KAFKA_PORT`` / ``FLYWHEEL_REDIS_PORT``, default 19092 / 16379);
2. if nothing answers there, a Docker engine really answers
   (:func:`flywheel_cli.docker_engine.docker_engine_available`) and the optional
   ``testcontainers`` package is installed: a Kafka and a Redis container for the
   session, exported through the same two variables for code that reads them;
3. otherwise each integration test errors with "run `make up`".

Every test under this folder is marked ``integration`` automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from flywheel.errors import DependencyUnavailable
from flywheel.kafka import KafkaConfig, ensure_topics, wait_for_kafka
from flywheel.redis import RedisConfig, wait_for_redis
from flywheel.topics import ALL_TOPICS
from flywheel_cli.config import StackConfig
from flywheel_cli.docker_engine import docker_engine_available

_HERE = Path(__file__).resolve().parent

TopicFactory = Callable[..., Awaitable[str]]
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private loop in a worker thread.

    Session fixtures are synchronous; ``asyncio.run`` on the main thread would reset
    the thread's current event loop under pytest-asyncio's feet.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True, slots=True)
class StackEndpoints:
    kafka: KafkaConfig
    redis: RedisConfig
    source: str  # "environment" | "local stack" | "testcontainers"


def _answers(kafka: KafkaConfig, redis: RedisConfig, timeout_s: float) -> str | None:
    """None when both answer, else why not."""

    async def probe() -> None:
        await asyncio.gather(
            wait_for_kafka(kafka, timeout_s=timeout_s), wait_for_redis(redis, timeout_s=timeout_s)
        )

    try:
        _run(probe())
    except DependencyUnavailable as exc:
        return str(exc)
    return None


def _testcontainers(stack: ExitStack, monkeypatch: pytest.MonkeyPatch) -> StackEndpoints | None:
    try:
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-not-found]
        from testcontainers.redis import RedisContainer  # type: ignore[import-not-found]
    except ImportError:
        return None
    kafka_container = stack.enter_context(KafkaContainer().with_kraft())
    redis_container = stack.enter_context(RedisContainer())
    bootstrap = kafka_container.get_bootstrap_server()
    host = redis_container.get_container_host_ip()
    url = f"redis://{host}:{redis_container.get_exposed_port(6379)}/0"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("REDIS_URL", url)
    kafka = KafkaConfig(bootstrap_servers=bootstrap, client_id="flywheel-tests")
    _run(ensure_topics(kafka, ALL_TOPICS))
    return StackEndpoints(kafka, RedisConfig(url=url), "testcontainers")


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    """Kafka and Redis for this test session (see the module docstring for where from)."""
    config = StackConfig.from_env(os.environ, cwd=Path.cwd())
    explicit = bool(config.external_kafka or config.external_redis)
    kafka = KafkaConfig(bootstrap_servers=config.kafka_bootstrap, client_id="flywheel-tests")
    redis = RedisConfig(url=config.redis_url)
    why_not = _answers(kafka, redis, timeout_s=20.0 if explicit else 5.0)
    if why_not is None:
        yield StackEndpoints(kafka, redis, "environment" if explicit else "local stack")
        return
    with ExitStack() as resources, pytest.MonkeyPatch.context() as monkeypatch:
        found = None
        if not explicit and docker_engine_available():
            found = _testcontainers(resources, monkeypatch)
        if found is None:
            pytest.fail(
                f"no Kafka/Redis for integration tests ({why_not}); run `make up`, "
                "or set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL",
                pytrace=False,
            )
        yield found


@pytest.fixture(scope="session")
def kafka_config(stack: StackEndpoints) -> KafkaConfig:
    return stack.kafka


@pytest.fixture(scope="session")
def redis_config(stack: StackEndpoints) -> RedisConfig:
    return stack.redis


@pytest.fixture
def group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group no other test (or earlier run) has used."""
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60]
    return f"test.{test}.{uuid4().hex[:8]}"


@pytest.fixture
async def topic_factory(kafka_config: KafkaConfig) -> AsyncIterator[TopicFactory]:
    """``await topic_factory(partitions=1, compacted=False, configs=None) -> name``.

    Each call creates a fresh, uniquely named topic; all are deleted after the test
    so a long-lived stack does not pile up partitions.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka_config.bootstrap_servers, client_id="flywheel-tests"
    )
    await admin.start()
    created: list[str] = []

    async def make(
        partitions: int = 1, *, compacted: bool = False, configs: dict[str, str] | None = None
    ) -> str:
        name = f"test.{uuid4().hex[:16]}"
        topic_configs = {"cleanup.policy": "compact" if compacted else "delete"}
        topic_configs.update(configs or {})
        response = await admin.create_topics(
            [
                NewTopic(
                    name, partitions, kafka_config.replication_factor, topic_configs=topic_configs
                )
            ]
        )
        # The admin client reports per-topic failures in the response, not by raising.
        errors = [err for err in response.topic_errors if err[1] != 0]
        if errors:
            raise AssertionError(f"creating topic {name} failed: {errors}")
        created.append(name)
        return name

    try:
        yield make
    finally:
        try:
            if created:
                await admin.delete_topics(created)
        finally:
            await admin.close()


@pytest.fixture
async def kafka_namespace(kafka_config: KafkaConfig) -> AsyncIterator[KafkaConfig]:
    """A KafkaConfig with a private ``topic_prefix`` and every Flywheel topic created
    under it; every topic under the prefix (services' own ones too) is deleted after.
    Services given the prefix use groups and transactional ids of their own too."""
    async with _namespace(kafka_config) as config:
        yield config


@pytest.fixture
async def other_kafka_namespace(kafka_config: KafkaConfig) -> AsyncIterator[KafkaConfig]:
    """A second private namespace, for a second deployment beside ``kafka_namespace``."""
    async with _namespace(kafka_config) as config:
        yield config


@contextlib.asynccontextmanager
async def _namespace(kafka_config: KafkaConfig) -> AsyncIterator[KafkaConfig]:
    config = KafkaConfig(
        bootstrap_servers=kafka_config.bootstrap_servers,
        client_id="flywheel-tests",
        topic_prefix=f"t{uuid4().hex[:10]}.",
    )
    await ensure_topics(config, ALL_TOPICS)
    try:
        yield config
    finally:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=config.bootstrap_servers, client_id="flywheel-tests"
        )
        await admin.start()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(config.topic_prefix)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()
