"""A deleted task stays deleted in the trainer: no champion rewritten to Redis, no new version."""

from __future__ import annotations

import numpy as np
from aiokafka import ConsumerRecord

from flywheel import serde
from flywheel.catalog import TaskCatalog
from flywheel.events import DeadLetter, ModelVersion
from flywheel.kafka import KafkaConfig
from flywheel.registry import ModelCache, RegistryView, champion_change, rebuild_cache
from trainer.config import Settings
from trainer.learner import BatchReport, TaskLearner
from trainer.records import Outgoing
from trainer.service import TrainerService

from .streams import make_batch, make_task


class RecordingCache(ModelCache):
    """A :class:`ModelCache` that keeps the champions it is given instead of using Redis."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.champions: dict[str, int] = {}

    async def set_champion(self, version: ModelVersion) -> None:
        self.champions[version.task] = version.version


def _promoted_report(learner: TaskLearner, seed: int) -> BatchReport:
    rng = np.random.default_rng(seed)
    for i in range(5):
        report = learner.score_then_learn(make_batch(rng, i, 60))
        if report.promotion is not None:
            return report
    raise AssertionError("no promotion in 5 batches")


def _champion(name: str, seed: int) -> ModelVersion:
    learner = TaskLearner(make_task(max_trees=10, trees_per_update=5))
    _promoted_report(learner, seed)
    assert learner.champion is not None
    return learner.champion.record.model_copy(update={"task": name})


def _tasks_record(name: str, *, deleted: bool) -> tuple[bytes, bytes | None]:
    task = make_task().model_copy(update={"name": name})
    return name.encode(), None if deleted else serde.encode(task)


def test_catalog_tells_a_deleted_task_from_one_never_applied() -> None:
    catalog = TaskCatalog(KafkaConfig())
    catalog.apply(*_tasks_record("kept", deleted=False))
    catalog.apply(*_tasks_record("gone", deleted=False))
    catalog.apply(*_tasks_record("gone", deleted=True))
    assert "gone" not in catalog and catalog.is_deleted("gone")
    assert "kept" in catalog and not catalog.is_deleted("kept")
    assert not catalog.is_deleted("never")
    assert catalog.deleted() == frozenset({"gone"})
    catalog.apply(*_tasks_record("gone", deleted=False))  # applied again
    assert "gone" in catalog and catalog.deleted() == frozenset()


async def test_rebuild_skips_the_champions_of_deleted_tasks() -> None:
    view = RegistryView()
    for seed, name in enumerate(("kept", "gone")):
        champion = _champion(name, seed)
        view.add(champion)
        view.add(champion_change(view, name, champion.version, kind="promotion", reason="t"))
    cache = RecordingCache()
    assert await rebuild_cache(view, cache, skip=frozenset({"gone"})) == 1
    assert set(cache.champions) == {"kept"}
    assert await rebuild_cache(view, RecordingCache()) == 2


async def test_a_batch_of_a_deleted_task_is_dead_lettered_without_waiting() -> None:
    service = TrainerService(Settings())
    service.catalog.apply(*_tasks_record("test.task", deleted=False))
    service.catalog.apply(*_tasks_record("test.task", deleted=True))
    batch = make_batch(np.random.default_rng(0), 0, 10)
    record = ConsumerRecord(
        topic="training.batches",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"test.task",
        value=serde.encode(batch),
        checksum=None,
        serialized_key_size=9,
        serialized_value_size=0,
        headers=[],
    )
    outgoing: list[Outgoing] = []
    assert await service._decode(record, outgoing) is None
    [(topic, key, value)] = outgoing
    assert topic == "feedback.dlq" and key == b"test.task" and value is not None
    letter = serde.decode(DeadLetter, value)
    assert letter.reason == "unknown_task" and "was deleted" in letter.error
    assert letter.source_offset == 7


async def test_a_champion_of_a_task_deleted_mid_update_is_not_cached() -> None:
    service = TrainerService(Settings())
    cache = RecordingCache()
    service._cache = cache
    learner = TaskLearner(make_task(max_trees=10, trees_per_update=5))
    service.learners["test.task"] = learner
    report = _promoted_report(learner, 4)

    service.catalog.apply(*_tasks_record("test.task", deleted=True))
    await service._after_commit([], [report])
    assert cache.champions == {}

    service.catalog.apply(*_tasks_record("test.task", deleted=False))
    await service._after_commit([], [report])
    assert cache.champions == {"test.task": report.candidate.version}
