"""flywheel.registry against the real broker and Redis: publish, reload, cache, integrity."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from flywheel.errors import ModelIntegrityError
from flywheel.events import ModelVersion
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig
from flywheel.registry import (
    ModelCache,
    ModelRegistry,
    announcement,
    champion_change,
    publish_registry_records,
    rebuild_cache,
)
from flywheel.tasks import FeatureSpec, FeatureType, Objective

pytestmark = pytest.mark.integration


def _version(task: str, number: int) -> ModelVersion:
    text = f"tree\nversion={number}\n" + "x" * 2_000_000  # bigger than Kafka's default 1 MiB
    return ModelVersion(
        task=task,
        version=number,
        objective=Objective.BINARY,
        model_text=text,
        model_sha256=ModelVersion.hash_text(text),
        feature_schema=(FeatureSpec(name="x", type=FeatureType.FLOAT),),
        trees=1,
        events_trained=100 * number,
    )


async def test_registry_round_trip_and_cache_rebuild(
    kafka: KafkaConfig, redis_config: RedisConfig, redis_client: aioredis.Redis
) -> None:
    writer = ModelRegistry(kafka)
    await writer.start(follow=False)
    try:
        v1, v2 = _version("t.one", 1), _version("t.one", 2)
        for version in (v1, v2):
            writer.add(version)
        promote = champion_change(writer, "t.one", 2, kind="promotion", reason="better")
        await publish_registry_records(kafka, [v1, v2, promote], announce=announcement(v2))
        assert await writer.catch_up() == 3
    finally:
        await writer.stop()

    reader = ModelRegistry(kafka)
    await reader.start(follow=False)
    try:
        champion = reader.champion("t.one")
        assert champion is not None and champion.version == 2
        assert champion.model_sha256 == v2.model_sha256
        assert [c.version for c in reader.history("t.one")] == [2]
    finally:
        await reader.stop()

    cache = ModelCache(redis_client, key_prefix=redis_config.key_prefix)
    assert await rebuild_cache(reader, cache) == 1
    loaded = await cache.load_champion("t.one")
    assert loaded == v2

    # A corrupted cache entry is refused, never served.
    await redis_client.hset(cache.model_key("t.one", 2), "text", b"tampered")
    with pytest.raises(ModelIntegrityError):
        await cache.load("t.one", 2)
    assert await cache.load("t.one", 99) is None
