"""What one update writes: model versions, champion changes, retirements, dead letters.

Pure functions from the learner's report and the registry view to ``(topic, key,
value)`` triples. The service writes them in one Kafka transaction with the offsets.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from aiokafka import ConsumerRecord

from flywheel import serde
from flywheel.events import DeadLetter, ModelPublished, ModelVersion, TrainingBatch, utc_now
from flywheel.kafka import KafkaConfig
from flywheel.registry import RegistryView, champion_change, registry_record
from flywheel.topics import FEEDBACK_DLQ, MODELS_PUBLISHED, MODELS_REGISTRY
from trainer.learner import BatchReport

__all__ = ["Outgoing", "dead_letter", "merge_batches", "registry_writes", "retirements"]

# (topic, key, value); value None is a tombstone.
Outgoing = tuple[str, bytes, bytes | None]
# Champion changes whose versions are never retired, so a rollback always has a target.
PROTECTED_CHANGES = 10


def merge_batches(batches: list[TrainingBatch]) -> TrainingBatch:
    """One batch holding ``batches`` in order (they are all of one task)."""
    if len(batches) == 1:
        return batches[0]
    names = list(dict.fromkeys(name for b in batches for name in b.columns))
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for b in batches:
        for name in names:
            columns[name].extend(b.columns.get(name, [None] * len(b)))
    oldest = [b.oldest_event_at for b in batches if b.oldest_event_at is not None]
    return TrainingBatch.model_construct(
        schema_version=1,
        batch_id=batches[0].batch_id,
        task=batches[0].task,
        created_at=batches[-1].created_at,
        event_ids=[e for b in batches for e in b.event_ids],
        columns=columns,
        labels=[label for b in batches for label in b.labels],
        prediction_ids=[],
        oldest_event_at=min(oldest) if oldest else None,
    )


def dead_letter(
    kafka: KafkaConfig, record: ConsumerRecord, reason: str, error: str, field: str | None = None
) -> Outgoing:
    """``record`` for ``feedback.dlq``: the original bytes and why it was refused."""
    letter = DeadLetter(
        reason=reason,
        error=error[:2_000],
        field=field,
        original_b64=base64.b64encode(record.value or b"").decode("ascii"),
        original_key=None if record.key is None else record.key.decode("utf-8", "replace"),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
    )
    return kafka.topic(FEEDBACK_DLQ), record.key or b"", serde.encode(letter)


def registry_writes(
    kafka: KafkaConfig,
    view: RegistryView,
    report: BatchReport,
    *,
    champion: ModelVersion | None,
    trained_through: dict[tuple[str, int], datetime],
    keep_versions: int,
) -> list[Outgoing]:
    """The new version, a promotion and its announcement if any, and retirements."""
    registry_topic = kafka.topic(MODELS_REGISTRY)
    candidate = report.candidate
    key, value = registry_record(candidate)
    writes: list[Outgoing] = [(registry_topic, key, value)]
    promotion = report.promotion
    if promotion is not None:
        assert champion is not None and champion.version == promotion.version
        change = champion_change(
            view,
            candidate.task,
            promotion.version,
            kind="promotion",
            reason=promotion.reason,
            metrics=promotion.metrics,
        )
        key, value = registry_record(change)
        writes.append((registry_topic, key, value))
        published = ModelPublished(
            task=candidate.task,
            version=promotion.version,
            model_sha256=champion.model_sha256,
            published_at=utc_now(),
            trained_through=trained_through.get((candidate.task, promotion.version)),
        )
        topic = kafka.topic(MODELS_PUBLISHED)
        writes.append((topic, candidate.task.encode(), serde.encode(published)))
    protected = {candidate.version, report.champion or 0}
    writes += retirements(kafka, view, candidate.task, protected, keep_versions)
    return writes


def retirements(
    kafka: KafkaConfig, view: RegistryView, task: str, protected: set[int], keep_versions: int
) -> list[Outgoing]:
    """Tombstones for versions beyond the newest ``keep_versions``.

    Kept regardless: ``protected`` and every version the last ``PROTECTED_CHANGES``
    champion changes name (as champion or as the one it replaced).
    """
    history = view.history(task)[-PROTECTED_CHANGES:]
    keep = set(protected) | {c.version for c in history}
    keep |= {c.previous_version for c in history if c.previous_version is not None}
    current = [v.version for v in view.versions(task)]
    # The update's own new version is one of the kept ones, not yet in the view.
    keep |= set(current[-(keep_versions - 1) :])
    topic = kafka.topic(MODELS_REGISTRY)
    return [(topic, f"{task}@v{n}".encode(), None) for n in current if n not in keep]
