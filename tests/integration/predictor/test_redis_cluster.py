"""Flywheel on a real three-primary Redis Cluster (docs/scaling.md "Redis Cluster").

A task's model keys share a slot (hash tag), so the champion switch is still one
MULTI/EXEC; tasks, entities and cached predictions spread over the nodes, and every
multi-key read or write the predictor does is routed per node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from flywheel import serde
from flywheel.catalog import apply_tasks, delete_task
from flywheel.events import EntityFeatures
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import (
    DEMOTED_MODEL_TTL_S,
    ModelCache,
    RegistryView,
    champion_change,
    reconcile_cache,
)
from flywheel.tasks import LabelSpec, LabelType, Objective, TaskDefinition
from flywheel.topics import ONLINE_FEATURES
from predictor.cache import PredictionCache, RedisGate
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.service import PredictorService
from tests.integration.predictor.conftest import ModelPublisher, StartService, client_for, wait_for
from tests.integration.redis_cluster import local_redis_cluster
from tests.unit.predictor.modelkit import ROW, SCHEMA, train_version

pytestmark = pytest.mark.integration

TASKS = [f"cluster.t{i}" for i in range(6)]


@pytest.fixture(scope="module")
def cluster_config() -> Iterator[RedisConfig]:
    with local_redis_cluster() as config:
        yield config


@pytest.fixture
async def cluster(cluster_config: RedisConfig) -> AsyncIterator[aioredis.RedisCluster]:
    client = connect_redis(cluster_config)
    assert isinstance(client, aioredis.RedisCluster)
    await client.initialize()  # load the slot map: the tests ask which node owns a key
    yield client
    await client.aclose()


def _node(cluster: aioredis.RedisCluster, key: str) -> str:
    return str(cluster.get_node_from_key(key).name)


@pytest.fixture
def cluster_cache(cluster: aioredis.RedisCluster, redis_prefix: str) -> ModelCache:
    return ModelCache(cluster, key_prefix=redis_prefix)


@pytest.fixture
def cluster_publisher(kafka_namespace: KafkaConfig, cluster_cache: ModelCache) -> ModelPublisher:
    return ModelPublisher(kafka_namespace, cluster_cache, RegistryView())


@pytest.fixture
def start_on_cluster(start_service: StartService, cluster_config: RedisConfig) -> StartService:
    async def start(**overrides: object) -> PredictorService:
        return await start_service(redis_url=cluster_config.url, redis_cluster=True, **overrides)

    return start


async def test_champions_switch_atomically_on_every_node(
    cluster: aioredis.RedisCluster, redis_prefix: str
) -> None:
    cache = ModelCache(cluster, key_prefix=redis_prefix)
    # The tasks land on more than one node, each task's keys on one slot.
    assert len({_node(cluster, cache.champion_key(t)) for t in TASKS}) > 1
    for task in TASKS:
        slot = cluster.keyslot(cache.champion_key(task))
        assert cluster.keyslot(cache.model_key(task, 7)) == slot
    for task in TASKS:
        await cache.set_champion(train_version(task, 1, rounds=3))
        await cache.set_champion(train_version(task, 2, rounds=3))  # MULTI/EXEC, 3 keys
    assert await cache.champions() == {task: 2 for task in TASKS}
    assert await cache.has_champions()
    for task in TASKS:
        loaded = await cache.load_champion(task)
        assert loaded is not None and loaded.version == 2
        assert 0 < await cluster.ttl(cache.model_key(task, 1)) <= DEMOTED_MODEL_TTL_S
        assert await cluster.ttl(cache.model_key(task, 2)) == -1

    await cache.forget(TASKS[0])
    assert await cluster.exists(cache.champion_key(TASKS[0]), cache.model_key(TASKS[0], 1)) == 0
    assert await cluster.exists(cache.model_key(TASKS[0], 2)) == 0
    assert set(await cache.champions()) == set(TASKS[1:])
    for task in TASKS[1:]:
        await cache.forget(task)
    assert not await cache.has_champions()


async def test_predictor_loads_every_champion_from_the_cluster(
    cluster_publisher: ModelPublisher, start_on_cluster: StartService
) -> None:
    for task in TASKS[:3]:
        await cluster_publisher.publish(train_version(task, 1, rounds=3))
    await cluster_publisher.publish(train_version(TASKS[0], 2, rounds=3))
    service = await start_on_cluster()
    async with client_for(service) as client:
        listed = {t["task"]: t for t in (await client.get("/v1/tasks")).json()}
        assert sorted(listed) == TASKS[:3]
        for task in TASKS[:3]:
            response = await client.post(f"/v1/tasks/{task}/predict", json={"features": ROW})
            assert response.status_code == 200
            assert response.json()["model_version"] == (2 if task == TASKS[0] else 1)
        assert (await client.get("/readyz")).json()["status"] == "ready"


async def test_an_empty_cluster_is_rebuilt_from_the_registry(
    cluster_publisher: ModelPublisher, cluster_cache: ModelCache, start_on_cluster: StartService
) -> None:
    for task in TASKS[3:]:
        await cluster_publisher.publish(train_version(task, 1, rounds=3), cache=False)
    assert await cluster_cache.champions() == {}
    await start_on_cluster()
    assert await cluster_cache.champions() == {task: 1 for task in TASKS[3:]}


async def test_prediction_cache_writes_spread_over_the_nodes(
    cluster: aioredis.RedisCluster, redis_prefix: str
) -> None:
    gate = RedisGate(cluster, PredictorMetrics(), retry_s=0.2)
    assert await gate.check()
    cache = PredictionCache(gate, PredictorMetrics(), ttl_s=60)
    keys = RedisKeys(redis_prefix)
    written = {
        keys.prediction(task, 1, explain, f"digest{i}"): {"score": i / 10, "task": task}
        for i, task in enumerate(TASKS)
        for explain in (False, True)
    }
    assert len({_node(cluster, key) for key in written}) > 1
    for key, result in written.items():
        cache.put(key, result)
    await cache.flush()  # one non-transactional pipeline of SETs across the nodes
    for key, result in written.items():
        assert await cache.get(key) == result
        assert 0 < await cluster.ttl(key) <= 60
    await cluster.delete(*written)


async def test_online_features_and_task_deletion_on_the_cluster(
    cluster: aioredis.RedisCluster,
    cluster_cache: ModelCache,
    kafka_namespace: KafkaConfig,
    start_on_cluster: StartService,
    redis_prefix: str,
) -> None:
    task = TASKS[0]
    definition = TaskDefinition(
        name=task, objective=Objective.BINARY, label=LabelSpec(type=LabelType.BOOL), features=SCHEMA
    )
    await apply_tasks(kafka_namespace, [definition])
    cache = cluster_cache
    publisher = ModelPublisher(kafka_namespace, cache, RegistryView())
    for version in (1, 2):
        await publisher.publish(train_version(task, version, rounds=3))
    service = await start_on_cluster()
    keys = RedisKeys(redis_prefix)
    entities = [f"user-{i}" for i in range(20)]
    assert len({_node(cluster, keys.entity(task, e)) for e in entities}) > 1
    topic = kafka_namespace.topic(ONLINE_FEATURES)
    producer = make_producer(kafka_namespace)
    await producer.start()
    try:
        for entity_id in entities:
            event = EntityFeatures(
                task=task, entity_id=entity_id, features={"retries": 2.0, "agent": "critic"}
            )
            await producer.send(topic, serde.encode(event), key=f"{task}:{entity_id}".encode())
        await producer.flush()

        async def all_stored() -> bool:
            return bool(await cluster.exists(*(keys.entity(task, e) for e in entities)) == 20)

        await wait_for(all_stored)
        for entity_id in entities[:5]:
            await producer.send(topic, None, key=f"{task}:{entity_id}".encode())
        await producer.flush()

        async def tombstoned() -> bool:
            return bool(await cluster.exists(*(keys.entity(task, e) for e in entities)) == 15)

        await wait_for(tombstoned)
    finally:
        await producer.stop()
    partial = {"steps": ROW["steps"], "cached": True}
    url = f"/v1/tasks/{task}/predict"
    async with client_for(service) as client:
        joined = await client.post(url, json={"features": partial, "entity_id": entities[-1]})
        assert joined.status_code == 200
        gone = await client.post(url, json={"features": partial, "entity_id": entities[0]})
        assert gone.status_code == 422

        await delete_task(kafka_namespace, task)

        async def forgotten() -> bool:
            return bool(
                await cluster.exists(
                    cache.champion_key(task), cache.model_key(task, 1), cache.model_key(task, 2)
                )
                == 0
            )

        await wait_for(forgotten, timeout_s=10)
    await cluster.delete(*(keys.entity(task, e) for e in entities[5:]))


async def test_a_lost_shard_is_reconciled_from_the_registry(
    cluster: aioredis.RedisCluster, redis_prefix: str
) -> None:
    cache = ModelCache(cluster, key_prefix=redis_prefix)
    view = RegistryView()
    for task in TASKS:
        version = train_version(task, 1, rounds=3)
        view.add(version)
        view.add(champion_change(view, task, 1, kind="promotion", reason="test"))
        await cache.set_champion(version)
    # One primary restarted empty: the keys of the tasks whose slot it owns are gone.
    shard = _node(cluster, cache.champion_key(TASKS[0]))
    lost = [t for t in TASKS if _node(cluster, cache.champion_key(t)) == shard]
    for task in lost:
        await cluster.delete(cache.champion_key(task), cache.model_key(task, 1))
    assert set(await cache.champions()) == set(TASKS) - set(lost)
    # A cross-node pipeline of per-key commands finds them; deleted tasks stay out.
    restored = await reconcile_cache(view, cache, skip=frozenset(lost[1:]))
    assert [v.task for v in restored] == lost[:1]
    assert set(await cache.champions()) == set(TASKS) - set(lost[1:])
    assert await reconcile_cache(view, cache) == [view.champion(t) for t in lost[1:]]
    assert await cache.champions() == {task: 1 for task in TASKS}
    for task in TASKS:
        await cache.forget(task)
