"""Deleting really deletes: a deleted task stops being served, a tombstoned entity's
features stop being joined (in-memory fakes; the real thing is in
tests/integration/predictor/test_deletion.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from flywheel import serde
from flywheel.events import EntityFeatures
from flywheel.kafka import KafkaConfig
from flywheel.tasks import FeatureSpec, FeatureType, LabelSpec, LabelType, Objective, TaskDefinition
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.online import OnlineFeatureSync
from predictor.serving import Predictor
from predictor.store import ModelStore
from predictor.task_watch import TaskWatch, serves_definition
from tests.unit.predictor.fakes import FakeRedis, FakeSource, make_predictor
from tests.unit.predictor.modelkit import ROW, SCHEMA, train_version

TASK = "demo.task"
URL = f"/v1/tasks/{TASK}/predict"
KAFKA = KafkaConfig(bootstrap_servers="127.0.0.1:1", topic_prefix="unit.")


def _definition(features: tuple[FeatureSpec, ...] = SCHEMA) -> bytes:
    task = TaskDefinition(
        name=TASK,
        objective=Objective.BINARY,
        label=LabelSpec(type=LabelType.BOOL),
        features=features,
    )
    return serde.encode(task)


async def _served() -> tuple[Predictor, Any, FakeSource, TaskWatch]:
    source = FakeSource(train_version(TASK, 1))
    predictor, app = await make_predictor(source=source)
    return predictor, app, source, TaskWatch(KAFKA, predictor.store, source)


async def _post(app: Any, url: str = URL) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        if url.endswith("/predict"):
            return await client.post(url, json={"features": ROW})
        return await client.get(url)


async def test_a_deleted_task_is_refused_unlisted_and_forgotten_in_redis() -> None:
    predictor, app, source, watch = await _served()
    assert (await _post(app)).status_code == 200

    watch.apply(TASK.encode(), None)

    response = await _post(app)
    assert response.status_code == 404
    assert response.json()["reason"] == "task_deleted"
    assert "was deleted" in response.json()["detail"]
    assert (await _post(app, f"/v1/tasks/{TASK}")).status_code == 404
    assert (await _post(app, "/v1/tasks")).json() == []
    assert await watch.handle_pending() == 1
    assert source.forgotten == [TASK] and TASK not in source.champion
    # A late announcement (the trainer published just before the deletion) is ignored.
    source.add(train_version(TASK, 2))
    assert not await predictor.store.swap_to(TASK, 2)
    assert predictor.store.get(TASK) is None


async def test_reapplied_with_the_same_features_serves_the_old_champion_again() -> None:
    _, app, source, watch = await _served()
    watch.apply(TASK.encode(), None)
    await watch.handle_pending()

    watch.apply(TASK.encode(), _definition())
    await watch.handle_pending()

    response = await _post(app)
    assert response.status_code == 200
    assert response.json()["model_version"] == 1
    assert source.champion[TASK] == 1  # written back to the cache


async def test_reapplied_with_other_features_waits_for_a_new_model() -> None:
    predictor, app, source, watch = await _served()
    watch.apply(TASK.encode(), None)
    changed = (*SCHEMA[:3], FeatureSpec(name="tokens", type=FeatureType.INT))
    watch.apply(TASK.encode(), _definition(changed))
    await watch.handle_pending()

    response = await _post(app)
    assert response.status_code == 404
    assert response.json()["reason"] == "no_model"
    # The trainer's next champion, announced on models.published, is served as usual.
    source.add(train_version(TASK, 2))
    assert await predictor.store.swap_to(TASK, 2)
    assert (await _post(app)).json()["model_version"] == 2


async def test_a_task_deleted_and_reapplied_before_start_up_is_checked_against_its_model() -> None:
    # Both records are in the topic at start-up; the champion was loaded from Redis.
    predictor, _, _, watch = await _served()
    changed = (*SCHEMA[:3], FeatureSpec(name="tokens", type=FeatureType.INT))
    predictor.store.unload(TASK)
    watch.apply(TASK.encode(), None)
    watch.apply(TASK.encode(), _definition(changed))
    await predictor.store.load_champions()  # Redis still names the old champion
    assert predictor.store.get(TASK) is not None
    await watch.handle_pending()
    assert predictor.store.get(TASK) is None


def test_serves_definition_compares_objective_and_features() -> None:
    model = train_version(TASK, 1)
    same = serde.decode(TaskDefinition, _definition())
    assert serves_definition(model, same)
    regression = same.model_copy(update={"objective": Objective.REGRESSION})
    assert not serves_definition(model, regression)
    reordered = same.model_copy(update={"features": tuple(reversed(SCHEMA))})
    assert not serves_definition(model, reordered)


def test_definitions_of_tasks_never_deleted_change_nothing() -> None:
    source = FakeSource()
    watch = TaskWatch(KAFKA, _store(source), source)
    watch.apply(TASK.encode(), _definition())
    assert watch._work.empty()


def _store(source: FakeSource) -> ModelStore:
    return ModelStore(source, PredictorMetrics())


@dataclass
class _Record:
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0


async def test_an_online_feature_tombstone_deletes_the_entity() -> None:
    redis = FakeRedis()
    predictor, _ = await make_predictor(train_version(TASK), redis=redis)
    keys = RedisKeys("t:")
    sync = OnlineFeatureSync(KAFKA, predictor.gate, keys, predictor.metrics)
    kept = EntityFeatures(task=TASK, entity_id="u:1", features={"retries": 2.0})
    gone = EntityFeatures(task=TASK, entity_id="u:2", features={"retries": 1.0})
    await sync._write([_Record(b"demo.task:u:1", serde.encode(kept))])
    await sync._write(
        [
            _Record(b"demo.task:u:2", serde.encode(gone)),
            _Record(b"demo.task:u:2", None),  # deleted in the same batch: stays deleted
            _Record(b"no-colon", None),  # not task:entity: skipped, nothing else lost
        ]
    )
    assert orjson.loads(redis.data[keys.entity(TASK, "u:1")])["features"] == {"retries": 2.0}
    assert keys.entity(TASK, "u:2") not in redis.data

    await sync._write([_Record(b"demo.task:u:1", None)])
    assert await predictor.entities.get(TASK, "u:1") == {}

    await sync._write(
        [_Record(b"demo.task:u:1", None), _Record(b"demo.task:u:1", serde.encode(kept))]
    )
    assert await predictor.entities.get(TASK, "u:1") == {"retries": 2.0}


async def test_redis_coming_back_forgets_retired_tasks_again() -> None:
    # Redis was down at the deletion, or came back empty and was rebuilt from the
    # registry (deleted tasks included): the keys are removed once it answers.
    _, _, source, watch = await _served()
    watch.apply(TASK.encode(), None)
    await watch.handle_pending()
    source.champion[TASK] = 1  # rebuilt into Redis
    watch.on_redis_back()
    assert await watch.handle_pending() == 1
    assert source.forgotten == [TASK, TASK] and TASK not in source.champion
