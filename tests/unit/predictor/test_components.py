from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel.events import PredictionLog
from predictor.auth import ApiKeyring, AuthError, hash_key
from predictor.metrics import PredictorMetrics
from predictor.prediction_log import PredictionLogSender
from predictor.store import ModelStore
from tests.unit.predictor.fakes import FakeProducer, FakeSource, sample
from tests.unit.predictor.modelkit import train_version

TASK = "demo.task"


def test_key_file_is_loaded_and_keys_compared_by_hash(tmp_path: Path) -> None:
    key = "s3cret-" + "a" * 30
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps({"keys": [{"name": "demo", "sha256": hash_key(key), "tasks": ["demo.*"]}]})
    )
    keyring = ApiKeyring.from_file(path)
    keyring.authorize(key, TASK)
    with pytest.raises(AuthError) as caught:
        keyring.authorize(key, "billing.fraud")
    assert caught.value.status == 403
    with pytest.raises(AuthError) as caught:
        keyring.authorize(key + "x", TASK)
    assert caught.value.status == 401
    assert key not in path.read_text()


def test_malformed_key_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"name": "demo", "sha256": "plain-text-key"}]}))
    with pytest.raises(ConfigError, match=r"keys\.0\.sha256"):
        ApiKeyring.from_file(path)


async def test_swap_installs_new_version_and_refuses_a_wrong_hash() -> None:
    metrics = PredictorMetrics()
    source = FakeSource(train_version(TASK, 1))
    store = ModelStore(source, metrics)
    assert await store.load_champions() == 1
    source.add(train_version(TASK, 2, seed=1))
    assert not await store.swap_to(TASK, 2, "0" * 64)
    assert store.get(TASK).version == 1  # type: ignore[union-attr]
    assert sample(metrics, "flywheel_predictor_model_load_failures_total", {"task": TASK}) == 1
    assert await store.swap_to(TASK, 2, source.versions[(TASK, 2)].model_sha256)
    assert store.get(TASK).version == 2  # type: ignore[union-attr]
    assert not await store.swap_to(TASK, 9)
    assert store.get(TASK).version == 2  # type: ignore[union-attr]


def _entry(i: int) -> PredictionLog:
    return PredictionLog(prediction_id=f"p{i}", task=TASK, model_version=1, score=0.5, latency_ms=1)


async def test_log_overflow_is_counted_not_blocking() -> None:
    metrics = PredictorMetrics()
    producer = FakeProducer()
    sender = PredictionLogSender(producer, "predictions.log", metrics, max_queue=100)  # type: ignore[arg-type]
    for i in range(150):
        sender.submit(_entry(i))
    assert sender.pending == 100
    assert sample(metrics, "flywheel_predictor_log_dropped_total", {"reason": "queue_full"}) == 50
    await sender.stop()
    assert len(producer.sent) == 100
    assert sample(metrics, "flywheel_predictor_log_sent_total") == 100
