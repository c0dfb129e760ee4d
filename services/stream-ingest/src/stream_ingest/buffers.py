"""Per-partition ingest state: one columnar buffer per task, pending dead letters, dedup.

Why per *partition*: offsets are committed per partition, and a partition's offset may
only move past an event once that event is durable in a batch or in the DLQ. Every
buffer of a partition is therefore flushed together, in one transaction with that
partition's offset (see writer.py); a task's ``flush`` policy decides *when*.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flywheel import serde
from flywheel.events import DeadLetter, FeedbackEvent, TrainingBatch
from flywheel.tasks import FeatureValue, LabelValue, TaskDefinition
from stream_ingest.dedup import DedupWindow
from stream_ingest.validation import EventValidator, Rejection

__all__ = ["EncodedRecord", "Flush", "PartitionState", "TaskBuffer"]

MAX_ERROR_CHARS = 2_000
# Base64 grows bytes by 4/3; 600 kB of original keeps a dead letter under the 1 MB limit.
MAX_DLQ_ORIGINAL_BYTES = 600_000


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """A message ready for the producer."""

    key: bytes | None
    value: bytes
    events: int = 0


@dataclass(slots=True)
class TaskBuffer:
    """One task's accepted events of one partition, already in columns."""

    task: TaskDefinition
    started_at: float
    event_ids: list[str] = field(default_factory=list)
    columns: dict[str, list[FeatureValue]] = field(default_factory=dict)
    labels: list[LabelValue] = field(default_factory=list)
    prediction_ids: list[str | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    published_ms: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = {name: [] for name in self.task.feature_names}

    def __len__(self) -> int:
        return len(self.event_ids)

    def append(self, event: FeedbackEvent, offset: int, published_ms: int) -> None:
        self.event_ids.append(event.event_id)
        features = event.features
        for name, column in self.columns.items():
            column.append(features.get(name))
        self.labels.append(event.label)
        self.prediction_ids.append(event.prediction_id)
        self.offsets.append(offset)
        self.published_ms.append(published_ms)

    def due(self, now: float) -> bool:
        policy = self.task.flush
        return len(self.event_ids) >= policy.max_events or now - self.started_at >= policy.max_age_s

    def deadline(self) -> float:
        return self.started_at + self.task.flush.max_age_s

    def encode(self, partition: int, max_bytes: int) -> list[EncodedRecord]:
        """The buffer as ``TrainingBatch`` messages of at most ``max_events`` rows, each
        under ``max_bytes``, in offset order."""
        out: list[EncodedRecord] = []
        size, step = len(self.event_ids), self.task.flush.max_events
        # A poll can overfill a buffer; no batch carries more than the task's max_events.
        ranges = [(lo, min(lo + step, size)) for lo in range(0, size, step)][::-1]
        while ranges:
            lo, hi = ranges.pop()
            value = serde.encode(self._batch(partition, lo, hi))
            if len(value) > max_bytes and hi - lo > 1:
                mid = (lo + hi) // 2
                # Pushed in reverse so batches leave in offset order.
                ranges += [(mid, hi), (lo, mid)]
                continue
            out.append(EncodedRecord(self.task.name.encode(), value, hi - lo))
        return out

    def _batch(self, partition: int, lo: int, hi: int) -> TrainingBatch:
        name = self.task.name
        prediction_ids = self.prediction_ids[lo:hi]
        # model_construct: every value was validated as part of its FeedbackEvent already,
        # and re-validating thousands of cells per batch would halve ingest throughput.
        return TrainingBatch.model_construct(
            schema_version=1,
            # Derived from source offsets, so a batch re-sent after an aborted
            # transaction carries the same id.
            batch_id=f"p{partition}.o{self.offsets[lo]}-{self.offsets[hi - 1]}.{name[:64]}",
            task=name,
            created_at=datetime.now(UTC),
            event_ids=self.event_ids[lo:hi],
            columns={n: col[lo:hi] for n, col in self.columns.items()},
            labels=self.labels[lo:hi],
            prediction_ids=prediction_ids if any(prediction_ids) else [],
            oldest_event_at=datetime.fromtimestamp(min(self.published_ms[lo:hi]) / 1000, UTC),
        )


@dataclass(frozen=True, slots=True)
class Flush:
    """What one partition commits in one transaction."""

    partition: int
    batches: list[EncodedRecord]
    dead_letters: list[EncodedRecord]
    dead_letter_reasons: list[str]
    accepted_ids: list[str]
    next_offset: int
    oldest_published_ms: int | None

    @property
    def events(self) -> int:
        return len(self.accepted_ids)


class PartitionState:
    """Everything consumed from one partition since its last committed flush."""

    def __init__(
        self,
        topic: str,
        partition: int,
        validator: EventValidator,
        dedup: DedupWindow,
        *,
        dlq_max_age_s: float,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.dedup = dedup
        self._validator = validator
        self._dlq_max_age_s = dlq_max_age_s
        self.buffers: dict[str, TaskBuffer] = {}
        self._dead_letters: list[EncodedRecord] = []
        self._reasons: list[str] = []
        self._dlq_since: float | None = None
        self._accepted: list[str] = []
        self.next_offset: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._accepted)

    @property
    def pending(self) -> bool:
        return self.next_offset is not None

    def add(
        self, key: bytes | None, value: bytes | None, offset: int, published_ms: int, now: float
    ) -> str | None:
        """Take one record; return the DLQ reason if it was refused, else None."""
        self.next_offset = offset + 1
        outcome = self._validator.validate(value)
        if isinstance(outcome, Rejection):
            self._reject(key, value, offset, outcome, now)
            return outcome.reason
        event, task = outcome
        if event.event_id in self.dedup:
            rejection = Rejection(
                "duplicate_event_id",
                f"event_id {event.event_id!r} was already accepted on this partition",
                "event_id",
            )
            self._reject(key, value, offset, rejection, now)
            return rejection.reason
        self.dedup.add(event.event_id)
        self._accepted.append(event.event_id)
        buffer = self.buffers.get(task.name)
        if buffer is None or buffer.task is not task:
            if buffer is not None:
                # The task definition changed mid-buffer; its columns may differ, so
                # the old rows leave in their own batch at the next flush.
                del self.buffers[task.name]  # re-inserted below, after the old rows
                self.buffers[f"{task.name}\x00{buffer.started_at}"] = buffer
            buffer = self.buffers[task.name] = TaskBuffer(task, started_at=now)
        buffer.append(event, offset, published_ms)
        return None

    def _reject(
        self, key: bytes | None, value: bytes | None, offset: int, why: Rejection, now: float
    ) -> None:
        original = value or b""
        error = why.error
        if len(original) > MAX_DLQ_ORIGINAL_BYTES:
            # Kafka cannot hold the whole record in a dead letter; keep its head and its
            # hash so the sender can find and fix it.
            error = (
                f"original truncated to its first {MAX_DLQ_ORIGINAL_BYTES} of {len(original)} "
                f"bytes (sha256 {hashlib.sha256(original).hexdigest()}); {error}"
            )
            original = original[:MAX_DLQ_ORIGINAL_BYTES]
        letter = DeadLetter(
            reason=why.reason,
            error=error[:MAX_ERROR_CHARS],
            field=why.field[:256] if why.field else None,
            original_b64=base64.b64encode(original).decode("ascii"),
            original_key=key.decode("utf-8", "replace")[:1_024] if key is not None else None,
            source_topic=self.topic,
            source_partition=self.partition,
            source_offset=offset,
        )
        self._dead_letters.append(EncodedRecord(key, serde.encode(letter)))
        self._reasons.append(why.reason)
        if self._dlq_since is None:
            self._dlq_since = now

    def due(self, now: float) -> bool:
        if self._dlq_since is not None and now - self._dlq_since >= self._dlq_max_age_s:
            return True
        return any(buffer.due(now) for buffer in self.buffers.values())

    def deadline(self) -> float | None:
        """The monotonic time at which this partition must flush by age, if anything waits."""
        times = [buffer.deadline() for buffer in self.buffers.values()]
        if self._dlq_since is not None:
            times.append(self._dlq_since + self._dlq_max_age_s)
        return min(times) if times else None

    def drain(self, max_batch_bytes: int) -> Flush:
        """Everything pending, as messages; the state is empty afterwards (dedup is kept)."""
        if self.next_offset is None:
            raise RuntimeError(f"partition {self.partition} has nothing to flush")
        batches = [
            record
            for buffer in self.buffers.values()
            for record in buffer.encode(self.partition, max_batch_bytes)
        ]
        published = [min(b.published_ms) for b in self.buffers.values() if b.published_ms]
        flush = Flush(
            partition=self.partition,
            batches=batches,
            dead_letters=self._dead_letters,
            dead_letter_reasons=self._reasons,
            accepted_ids=self._accepted,
            next_offset=self.next_offset,
            oldest_published_ms=min(published) if published else None,
        )
        self.buffers = {}
        self._dead_letters, self._reasons, self._accepted = [], [], []
        self._dlq_since = None
        self.next_offset = None
        return flush

    def task_depths(self) -> Iterator[tuple[str, int]]:
        for buffer in self.buffers.values():
            yield buffer.task.name, len(buffer)
