"""Service pieces that need no broker: batch merging, settings, exported metrics."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from trainer.config import Settings
from trainer.metrics import TrainerMetrics
from trainer.records import merge_batches

from .streams import make_batch


def test_merge_keeps_order_and_the_oldest_event_time() -> None:
    rng = np.random.default_rng(0)
    first, second = make_batch(rng, 0, 3), make_batch(rng, 1, 2)
    first = first.model_copy(update={"oldest_event_at": datetime(2026, 1, 2, tzinfo=UTC)})
    second = second.model_copy(update={"oldest_event_at": datetime(2026, 1, 1, tzinfo=UTC)})
    merged = merge_batches([first, second])
    assert merged.event_ids == first.event_ids + second.event_ids
    assert merged.labels == first.labels + second.labels
    assert merged.columns["a"] == first.columns["a"] + second.columns["a"]
    assert merged.oldest_event_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert len(merged.rows()) == 5
    assert merge_batches([first]) is first


def test_merge_fills_a_column_missing_from_one_batch_with_none() -> None:
    rng = np.random.default_rng(1)
    first, second = make_batch(rng, 0, 2), make_batch(rng, 1, 2)
    del second.columns["agent"]
    merged = merge_batches([first, second])
    assert merged.columns["agent"][2:] == [None, None]


def test_settings_refuse_unsafe_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_TRAINER_PROMOTION_TOLERANCE", "0.9")
    with pytest.raises(ValidationError, match="trainer_promotion_tolerance"):
        Settings()
    monkeypatch.setenv("FLYWHEEL_TRAINER_PROMOTION_TOLERANCE", "0.01")
    monkeypatch.setenv("FLYWHEEL_TRAINER_GROUP_ID", "bad group!")
    with pytest.raises(ValidationError, match="trainer_group_id"):
        Settings()
    monkeypatch.delenv("FLYWHEEL_TRAINER_GROUP_ID")
    settings = Settings()
    assert settings.trainer_port == 19102 and settings.trainer_promotion_tolerance == 0.01


def test_live_metrics_follow_the_champion_version() -> None:
    metrics = TrainerMetrics()
    metrics.live("t", 1, {"accuracy": 0.9, "n": 10.0})
    metrics.live("t", 2, {"accuracy": 0.95})
    value = metrics.registry.get_sample_value
    labels = {"task": "t", "metric": "accuracy"}
    assert value("flywheel_trainer_prequential", {**labels, "version": "2"}) == 0.95
    # The old version's series is gone, so dashboards never show two champions at once.
    assert value("flywheel_trainer_prequential", {**labels, "version": "1"}) is None
    assert (
        value("flywheel_trainer_prequential", {"task": "t", "metric": "n", "version": "2"}) is None
    )


def test_retirement_keeps_the_newest_versions_and_every_recent_champion() -> None:
    from flywheel.kafka import KafkaConfig
    from flywheel.registry import RegistryView, champion_change, registry_record
    from trainer.learner import TaskLearner
    from trainer.records import retirements

    from .streams import make_task

    learner = TaskLearner(make_task(max_trees=10, trees_per_update=5))
    rng = np.random.default_rng(2)
    view = RegistryView()
    for i in range(8):
        view.apply(*registry_record(learner.score_then_learn(make_batch(rng, i, 60)).candidate))
    view.apply(
        *registry_record(champion_change(view, "test.task", 2, kind="promotion", reason="x"))
    )
    kafka = KafkaConfig(topic_prefix="p.")
    tombstones = retirements(kafka, view, "test.task", {9}, keep_versions=3)
    assert all(topic == "p.models.registry" and value is None for topic, _, value in tombstones)
    # Kept: v2 (a champion), v7 and v8 (the newest two + the update's own v9).
    assert [key for _, key, _ in tombstones] == [
        f"test.task@v{n}".encode() for n in (1, 3, 4, 5, 6)
    ]


def test_heartbeat_gauges_come_from_the_owned_partitions_and_learners() -> None:
    from aiokafka import TopicPartition

    from trainer.learner import TaskLearner
    from trainer.service import TrainerService

    from .streams import make_task

    service = TrainerService(Settings(heartbeat_interval_s=2.0))
    assert service.heartbeat_gauges() == {
        "partitions_owned": 0.0,
        "tasks_owned": 0.0,
        "learners": 0.0,
        "model_trees": 0.0,
        "model_bytes": 0.0,
        "events_trained_total": 0.0,
        "requests_total": 0.0,
        "request_errors_total": 0.0,
    }
    learner = TaskLearner(make_task(max_trees=10, trees_per_update=5))
    rng = np.random.default_rng(3)
    for i in range(3):
        learner.score_then_learn(make_batch(rng, i, 60))
    assert learner.champion is not None
    champion = learner.champion.record
    owned, other = TopicPartition("t", 0), TopicPartition("t", 1)
    service._producers[owned] = object()  # type: ignore[assignment]
    service._tasks_of[owned] = {"test.task"}
    service._tasks_of[other] = {"gone.task"}  # revoked meanwhile: not owned
    service.learners["test.task"] = learner
    service.batches_total, service.batch_errors_total = 5, 2
    service.events_trained_total = 180
    gauges = service.heartbeat_gauges()
    assert gauges == {
        "partitions_owned": 1.0,
        "tasks_owned": 1.0,
        "learners": 1.0,
        "model_trees": float(champion.trees),
        "model_bytes": float(len(champion.model_text)),
        "events_trained_total": 180.0,
        "requests_total": 5.0,
        "request_errors_total": 2.0,
    }
    assert champion.trees > 0
    beat = service.heartbeat.build()
    assert beat.service == "trainer" and beat.gauges == gauges
