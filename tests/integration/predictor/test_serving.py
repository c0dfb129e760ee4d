from __future__ import annotations

import asyncio
from collections import Counter

import orjson

from flywheel import serde
from flywheel.events import EntityFeatures, PredictionLog
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.prediction_batches import PredictionBatchRequest, PredictionBatchResult
from flywheel.registry import ModelCache
from flywheel.topics import (
    ONLINE_FEATURES,
    PREDICTIONS_LOG,
    PREDICTIONS_REQUESTS,
    PREDICTIONS_RESULTS,
)
from predictor.partitions import assign_all_partitions
from tests.integration.heartbeats import wait_for_heartbeat
from tests.integration.predictor.conftest import ModelPublisher, StartService, client_for, wait_for
from tests.unit.predictor.modelkit import ROW, train_version

TASK = "demo.task"
URL = f"/v1/tasks/{TASK}/predict"


async def _read_all(
    kafka: KafkaConfig, topic: str, want: int, timeout_s: float = 20
) -> list[bytes]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        await assign_all_partitions(consumer, kafka.topic_prefix + topic)
        await consumer.seek_to_beginning()
        values: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(values) < want and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values.extend(r.value for rs in batches.values() for r in rs if r.value)
        return values
    finally:
        await consumer.stop()


async def test_hot_swap_under_load_has_no_errors(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1, rounds=20))
    service = await start_service()
    statuses: Counter[int] = Counter()
    versions: Counter[int] = Counter()
    stop = asyncio.Event()

    async def load(client_id: int) -> None:
        async with client_for(service) as client:
            i = 0
            while not stop.is_set():
                features = {**ROW, "steps": (client_id * 1000 + i) % 40}
                response = await client.post(URL, json={"features": features})
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    versions[response.json()["model_version"]] += 1
                i += 1

    workers = [asyncio.create_task(load(n)) for n in range(4)]
    await asyncio.sleep(0.5)
    # A bigger model takes longer to load: the swap happens while requests flow.
    await publisher.publish(train_version(TASK, 2, rounds=200, seed=3))
    await wait_for(lambda: _served_version(service, 2))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*workers)
    assert set(statuses) == {200}, statuses
    assert versions[1] > 0
    assert versions[2] > 0
    assert sum(statuses.values()) > 100


async def _served_version(service: object, version: int) -> bool:
    model = service.predictor.store.get(TASK)  # type: ignore[attr-defined]
    return model is not None and model.version == version


async def test_empty_redis_is_rebuilt_from_the_registry(
    publisher: ModelPublisher, start_service: StartService, redis_client: object, redis_prefix: str
) -> None:
    await publisher.publish(train_version(TASK, 1), cache=False)
    service = await start_service()
    async with client_for(service) as client:
        response = await client.post(URL, json={"features": ROW})
        assert response.status_code == 200
        assert response.json()["model_version"] == 1
        assert (await client.get("/readyz")).json() == {
            "status": "ready",
            "redis": True,
            "models": 1,
        }
    champion_key = ModelCache(redis_client, key_prefix=redis_prefix).champion_key(TASK)
    assert await redis_client.get(champion_key) == b"1"  # type: ignore[attr-defined]


async def test_every_prediction_is_logged_and_counted_in_the_heartbeat(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1))
    service = await start_service(heartbeat_interval_s=0.5)
    async with client_for(service) as client:
        one = (await client.post(URL, json={"features": ROW})).json()
        rows = (await client.post(URL, json={"rows": [ROW, ROW]})).json()
        refused = await client.post(URL, json={"features": {**ROW, "steps": "x"}})
        assert refused.status_code == 422
    expected = {one["prediction_id"], *(p["prediction_id"] for p in rows["predictions"])}
    logged = [
        serde.decode(PredictionLog, v)
        for v in await _read_all(kafka_namespace, PREDICTIONS_LOG.name, 3)
    ]
    assert {entry.prediction_id for entry in logged} == expected
    assert all(entry.task == TASK and entry.model_version == 1 for entry in logged)
    # The heartbeat on services.heartbeats carries the same counts.
    beat = await wait_for_heartbeat(
        kafka_namespace,
        "predictor",
        lambda b: b.gauges.get("requests_total") == 3 and "prediction_log_queue_depth" in b.gauges,
    )
    assert beat.gauges["request_errors_total"] == 0
    assert beat.gauges["models_loaded"] == 1
    assert beat.gauges["prediction_log_overflow_total"] == 0
    assert beat.rss_bytes > 0


async def test_online_features_from_kafka_are_joined(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1))
    service = await start_service()
    producer = make_producer(kafka_namespace)
    await producer.start()
    try:
        entity = EntityFeatures(
            task=TASK, entity_id="user-7", features={"retries": 2.0, "agent": "critic"}
        )
        await producer.send_and_wait(
            kafka_namespace.topic(ONLINE_FEATURES),
            serde.encode(entity),
            key=f"{TASK}:user-7".encode(),
        )
    finally:
        await producer.stop()
    async with client_for(service) as client:
        direct = (
            await client.post(URL, json={"features": {**ROW, "retries": 2.0, "agent": "critic"}})
        ).json()

        async def joined() -> bool:
            response = await client.post(
                URL,
                json={"features": {"steps": ROW["steps"], "cached": True}, "entity_id": "user-7"},
            )
            return response.status_code == 200 and response.json()["score"] == direct["score"]

        await wait_for(joined)


async def test_offline_batch_request_gets_results(
    publisher: ModelPublisher, start_service: StartService, kafka_namespace: KafkaConfig
) -> None:
    await publisher.publish(train_version(TASK, 1))
    await start_service()
    good = PredictionBatchRequest(request_id="req-1", task=TASK, rows=[ROW, {**ROW, "steps": 3}])
    bad = PredictionBatchRequest(request_id="req-2", task=TASK, rows=[{**ROW, "steps": "x"}])
    producer = make_producer(kafka_namespace)
    await producer.start()
    try:
        for request in (good, bad):
            await producer.send_and_wait(
                kafka_namespace.topic(PREDICTIONS_REQUESTS),
                serde.encode(request),
                key=TASK.encode(),
            )
        await producer.send_and_wait(
            kafka_namespace.topic(PREDICTIONS_REQUESTS), b"{not json", key=TASK.encode()
        )
    finally:
        await producer.stop()
    raw = await _read_all(kafka_namespace, PREDICTIONS_RESULTS.name, 3, timeout_s=30)
    results = {
        r.request_id: r
        for r in (serde.decode(PredictionBatchResult, v, max_bytes=10**7) for v in raw)
    }
    assert len(results) == 3
    assert len(results["req-1"].predictions) == 2
    assert results["req-1"].model_version == 1
    assert results["req-2"].error is not None
    assert results["req-2"].error.field == "rows.0.steps"
    [broken] = [r for k, r in results.items() if k not in ("req-1", "req-2")]
    assert broken.error is not None and broken.error.reason == "broken_json"
    assert orjson.loads(raw[0])  # results are plain JSON for any client
