"""``flywheel integrate`` end to end against the running stack's services.

The local stack's stream-ingest, trainer and predictor read the un-prefixed topics, so
this test applies a task with a unique name to the real ``tasks`` topic (and deletes it
afterwards), generates its client with the real CLI, trains a model through the
generated client's feedback, predicts through it (one row, many rows, an entity whose
features were pushed to ``features.online``, and an offline batch over
``predictions.requests`` -> ``predictions.results``), sends feedback carrying the
prediction_id (read back from ``feedback.events``), and runs the generated test file
against the same stack.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
from aiokafka import TopicPartition
from pydantic import BaseModel

from flywheel import serde
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.prediction_batches import PredictionBatchResult
from flywheel.topics import (
    FEEDBACK_EVENTS,
    ONLINE_FEATURES,
    PREDICTIONS_REQUESTS,
    PREDICTIONS_RESULTS,
    TopicSpec,
)
from flywheel_cli.__main__ import main
from flywheel_cli.config import StackConfig
from predictor.partitions import assign_all_partitions

pytestmark = pytest.mark.integration

M = TypeVar("M", bound=BaseModel)
SERVICE = "it_service"
MODEL_WAIT_S = 30.0


@dataclass(frozen=True)
class LiveTask:
    name: str
    schema: Path
    env: dict[str, str]  # what the CLI and the generated client read


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _predictor_url() -> str:
    port = StackConfig.from_env(os.environ, cwd=Path.cwd()).service_ports["predictor"]
    url = f"http://127.0.0.1:{port}"
    try:
        ready = httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200
    except httpx.TransportError:
        ready = False
    if not ready:
        pytest.fail(
            f"no ready predictor at {url}: this test needs the stack's services (`make up`)",
            pytrace=False,
        )
    return url


@pytest.fixture
def live_task(
    kafka_config: KafkaConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveTask]:
    name = f"it.integrate-{uuid4().hex[:12]}"
    schema = tmp_path / "features.yaml"
    # One flush of the whole history (sent within a second) means one training round.
    schema.write_text(
        f"name: {name}\n"
        "objective: binary\n"
        "label: {type: bool}\n"
        "owner: integration-tests\n"
        "features:\n"
        "  - {name: steps, type: int}\n"
        "  - {name: retries, type: float}\n"
        "  - {name: agent, type: category}\n"
        "flush: {max_events: 1000, max_age_s: 1}\n"
        "training: {min_events_to_train: 60, window_events: 1000, max_trees: 40}\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "FLYWHEEL_TOPIC_PREFIX"},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_config.bootstrap_servers,
        "FLYWHEEL_PREDICTOR_URL": _predictor_url(),
        "FLYWHEEL_TIMEOUT_S": "2",
    }
    # `flywheel tasks apply/delete` in this process (the same code, no interpreter
    # start-up); `flywheel integrate` below runs as its own process.
    monkeypatch.delenv("FLYWHEEL_TOPIC_PREFIX", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_config.bootstrap_servers)
    assert main(["tasks", "apply", str(schema)]) == 0
    try:
        yield LiveTask(name, schema, env)
    finally:
        assert main(["tasks", "delete", name]) == 0


def _import(directory: Path, module: str) -> ModuleType:
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))


def _outcome(steps: int, agent: str) -> bool:
    # What the generated client teaches the model: short runs by the planner succeed.
    return steps < 10 and agent == "planner"


async def _end_offsets(kafka: KafkaConfig, topic: TopicSpec) -> dict[TopicPartition, int]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        partitions = await assign_all_partitions(consumer, kafka.topic(topic))
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def _find(
    kafka: KafkaConfig,
    topic: TopicSpec,
    since: dict[TopicPartition, int],
    model: type[M],
    wanted: Callable[[M], bool],
    *,
    timeout_s: float = 15,
) -> M:
    """The first record after ``since`` on ``topic`` that ``wanted`` accepts."""
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        await assign_all_partitions(consumer, kafka.topic(topic))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for record in records:
                    value = serde.decode(model, record.value)
                    if wanted(value):
                        return value
        raise AssertionError(f"no such {model.__name__} on {topic.name} in {timeout_s:.0f}s")
    finally:
        await consumer.stop()


async def _send(kafka: KafkaConfig, topic: TopicSpec, key: str, record: BaseModel | None) -> None:
    """Send ``record`` (None: a tombstone, so compaction drops the key)."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        value = serde.encode(record) if record is not None else None
        await producer.send_and_wait(kafka.topic(topic), value, key=key.encode())
    finally:
        await producer.stop()


async def _batch_through_kafka(kafka: KafkaConfig, request: Any) -> PredictionBatchResult:
    """What the AI GM planner does: one request on predictions.requests, its answer
    from predictions.results."""
    since = await _end_offsets(kafka, PREDICTIONS_RESULTS)
    await _send(kafka, PREDICTIONS_REQUESTS, request.task, request)
    return await _find(
        kafka,
        PREDICTIONS_RESULTS,
        since,
        PredictionBatchResult,
        lambda r: r.request_id == request.request_id,
    )


def _predict_entity_when_copied(client: Any, entity_id: str, rejected: type[Exception]) -> Any:
    # The predictor copies features.online into Redis as it follows the topic; until
    # then the entity has no stored features and the row misses them (422).
    deadline = time.monotonic() + 15
    while True:
        try:
            return client.predict_entity(entity_id)
        except rejected:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def _observe_history(gen: ModuleType, env: dict[str, str], count: int) -> None:
    agents = ("planner", "coder", "reviewer")
    async with gen.AsyncClient.from_env(env) as client:
        sends = []
        for i in range(count):
            steps, agent = i % 20, agents[i % 3]
            row = gen.Features(steps=steps, retries=float(i % 4), agent=agent)
            sends.append(client.observe(row, _outcome(steps, agent)))
        events = await asyncio.gather(*sends)
    assert len({e.event_id for e in events}) == count


def _wait_for_model(env: dict[str, str], task: str, events: int) -> None:
    """Until the predictor serves a version of ``task`` trained on ``events`` events."""
    url = f"{env['FLYWHEEL_PREDICTOR_URL']}/v1/tasks/{task}"
    deadline = time.monotonic() + MODEL_WAIT_S
    seen: Any = None
    while time.monotonic() < deadline:
        answer = httpx.get(url, timeout=2.0)
        if answer.status_code == 200:
            seen = answer.json()
            if seen.get("events_trained", 0) >= events:
                return
        time.sleep(0.25)
    pytest.fail(f"{task}: no version trained on {events} events in {MODEL_WAIT_S:.0f}s ({seen})")


def test_generated_client_learns_predicts_and_links_feedback(
    live_task: LiveTask, kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    out = tmp_path / "generated"
    generated = _cli(
        live_task.env,
        "integrate", SERVICE, "--task", live_task.name,
        "--schema", str(live_task.schema), "--out", str(out),
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    module_name = live_task.name.replace(".", "_").replace("-", "_")
    gen = _import(out, module_name)

    with gen.Client.from_env(live_task.env) as client:
        first = gen.Features(steps=3, retries=0.0, agent="planner")
        # No model yet: the fallback answers, marked as such, with nothing to join.
        early = client.predict(first, fallback=False)
        assert early.fallback and early.prediction_id is None and early.label is False

        # Outcomes observed without predictions train the first model; the async
        # twin sends them concurrently (one acknowledged send each).
        asyncio.run(_observe_history(gen, live_task.env, 240))

        # Every comparison below is within this one version: no event arrives until the
        # feedback at the end.
        _wait_for_model(live_task.env, live_task.name, 240)
        prediction = client.predict(first)
        assert not prediction.fallback
        assert prediction.prediction_id and prediction.model_version >= 1
        assert isinstance(prediction.label, bool)
        assert 0.0 <= prediction.probability <= 1.0
        many = client.predict_many([first, gen.Features(steps=19, retries=3.0, agent="coder")])
        assert len({p.prediction_id for p in many}) == 2
        assert many[0].result.score > many[1].result.score  # it learned the pattern

        # Feature-store features: the entity's row is pushed to features.online and
        # joined by the predictor for a request that names the entity.
        entity = f"player-{uuid4().hex[:8]}"
        stored = gen.PartialFeatures(steps=3, retries=0.0, agent="coder")
        key = f"{live_task.name}:{entity}"
        asyncio.run(_send(kafka_config, ONLINE_FEATURES, key, gen.entity_features(entity, stored)))
        try:
            from_store = _predict_entity_when_copied(client, entity, gen.ValidationRejected)
            assert from_store.entity_id == entity and from_store.features is None
            as_coder = client.predict(gen.Features(steps=3, retries=0.0, agent="coder"))
            assert from_store.result.score == as_coder.result.score
            # Request values win over stored ones.
            overridden = client.predict_entity(entity, gen.PartialFeatures(agent="planner"))
            assert overridden.result.score == prediction.result.score
        finally:
            asyncio.run(_send(kafka_config, ONLINE_FEATURES, key, None))

        # Batch processing: the same rows scored offline through Kafka.
        rows = [first, gen.Features(steps=19, retries=3.0, agent="coder")]
        answer = asyncio.run(_batch_through_kafka(kafka_config, gen.batch_request(rows)))
        batch = gen.predictions_from_batch(answer, rows)
        assert [p.features for p in batch] == rows and all(p.prediction_id for p in batch)
        assert batch[0].model_version == prediction.model_version
        assert batch[0].result.score == prediction.result.score

        # Last, the outcome of the first prediction (it would train a new version).
        since = asyncio.run(_end_offsets(kafka_config, FEEDBACK_EVENTS))
        sent = client.feedback(prediction, True)
        assert sent.prediction_id == prediction.prediction_id

    landed = asyncio.run(
        _find(
            kafka_config,
            FEEDBACK_EVENTS,
            since,
            FeedbackEvent,
            lambda e: e.event_id == sent.event_id,
        )
    )
    assert landed.prediction_id == prediction.prediction_id
    assert (landed.task, landed.source, landed.label) == (live_task.name, SERVICE, True)
    assert landed.features == {"steps": 3, "retries": 0.0, "agent": "planner"}

    # The generated test file, as the service would run it, against the same stack.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out)],
        cwd=out,
        env=live_task.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "7 passed" in run.stdout, run.stdout
