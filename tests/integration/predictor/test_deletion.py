"""Deleting really deletes, against the real Kafka and Redis: a deleted task stops
being served (and comes back when re-applied), a tombstoned entity's online features
stop being joined."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from flywheel import serde
from flywheel.catalog import apply_tasks, delete_task
from flywheel.events import EntityFeatures
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.registry import ModelCache
from flywheel.tasks import LabelSpec, LabelType, Objective, TaskDefinition
from flywheel.topics import ONLINE_FEATURES
from tests.integration.predictor.conftest import ModelPublisher, StartService, client_for, wait_for
from tests.unit.predictor.modelkit import ROW, SCHEMA, train_version

pytestmark = pytest.mark.integration

TASK = "demo.task"
URL = f"/v1/tasks/{TASK}/predict"
DEFINITION = TaskDefinition(
    name=TASK, objective=Objective.BINARY, label=LabelSpec(type=LabelType.BOOL), features=SCHEMA
)


async def test_a_deleted_task_stops_being_served_until_it_is_applied_again(
    publisher: ModelPublisher,
    start_service: StartService,
    kafka_namespace: KafkaConfig,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    await apply_tasks(kafka_namespace, [DEFINITION])
    await publisher.publish(train_version(TASK, 1))
    service = await start_service()
    cache = ModelCache(redis_client, key_prefix=redis_prefix)
    async with client_for(service) as client:
        assert (await client.post(URL, json={"features": ROW})).status_code == 200

        await delete_task(kafka_namespace, TASK)

        async def refused() -> bool:
            response = await client.post(URL, json={"features": ROW})
            return response.status_code == 404

        await wait_for(refused, timeout_s=10)
        body = (await client.post(URL, json={"features": ROW})).json()
        assert body["reason"] == "task_deleted" and "was deleted" in body["detail"]
        assert (await client.get("/v1/tasks")).json() == []

        async def forgotten() -> bool:
            return (
                await redis_client.exists(cache.champion_key(TASK), cache.model_key(TASK, 1)) == 0
            )

        await wait_for(forgotten, timeout_s=10)
        # The registry keeps the history: re-applying the same definition serves v1 again.
        await apply_tasks(kafka_namespace, [DEFINITION])

        async def served() -> bool:
            response = await client.post(URL, json={"features": ROW})
            return response.status_code == 200 and response.json()["model_version"] == 1

        await wait_for(served, timeout_s=10)
        assert [t["task"] for t in (await client.get("/v1/tasks")).json()] == [TASK]
        assert await cache.champion_version(TASK) == 1


async def test_a_restarted_predictor_does_not_serve_a_deleted_task(
    publisher: ModelPublisher,
    start_service: StartService,
    kafka_namespace: KafkaConfig,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    await apply_tasks(kafka_namespace, [DEFINITION])
    await publisher.publish(train_version(TASK, 1))
    await delete_task(kafka_namespace, TASK)
    # The champion is still in Redis (deleted while no predictor ran).
    service = await start_service()
    async with client_for(service) as client:
        response = await client.post(URL, json={"features": ROW})
        assert response.status_code == 404 and response.json()["reason"] == "task_deleted"
    cache = ModelCache(redis_client, key_prefix=redis_prefix)

    async def forgotten() -> bool:
        return await cache.champion_version(TASK) is None

    await wait_for(forgotten, timeout_s=10)


async def test_a_tombstoned_entity_is_no_longer_joined(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1))
    service = await start_service()
    topic = kafka_namespace.topic(ONLINE_FEATURES)
    key = f"{TASK}:user-7".encode()
    entity = EntityFeatures(
        task=TASK, entity_id="user-7", features={"retries": 2.0, "agent": "critic"}
    )
    partial = {"steps": ROW["steps"], "cached": True}
    producer = make_producer(kafka_namespace)
    await producer.start()
    try:
        await producer.send_and_wait(topic, serde.encode(entity), key=key)
        async with client_for(service) as client:

            async def score(features: dict[str, object], entity_id: str | None) -> httpx.Response:
                body = {"features": features, "entity_id": entity_id}
                return await client.post(URL, json=body)

            joined = (await score({**ROW, "retries": 2.0, "agent": "critic"}, None)).json()

            async def is_joined() -> bool:
                response = await score(partial, "user-7")
                return response.status_code == 200 and response.json()["score"] == joined["score"]

            await wait_for(is_joined, timeout_s=10)
            await producer.send_and_wait(topic, None, key=key)

            # The stored features are gone: the entity no longer supplies the
            # required features the request leaves out.
            async def not_joined() -> bool:
                response = await score(partial, "user-7")
                return response.status_code == 422

            await wait_for(not_joined, timeout_s=10)
            body = (await score(partial, "user-7")).json()
            assert body["field"] in ("features.retries", "features.agent"), body
    finally:
        await producer.stop()
