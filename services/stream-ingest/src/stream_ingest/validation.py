"""Deciding whether one raw ``feedback.events`` record may be trained on.

Pure and synchronous (no I/O), so every refusal reason is unit-tested without Kafka.
The order of the checks is the order of the reasons in docs/stream-ingest.md: size,
JSON, schema, task, features and label. De-duplication comes after (see dedup.py),
because only an otherwise valid event can be a duplicate worth remembering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flywheel import serde
from flywheel.errors import SerdeError
from flywheel.events import FeedbackEvent
from flywheel.tasks import TaskDefinition

__all__ = ["EventValidator", "Rejection", "TaskLookup"]

TaskLookup = Callable[[str], TaskDefinition | None]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is refused: ``reason`` is the DLQ reason code, ``field`` the culprit."""

    reason: str
    error: str
    field: str | None = None


class EventValidator:
    """Turns raw bytes into a :class:`FeedbackEvent` checked against its task, or a Rejection."""

    def __init__(self, tasks: TaskLookup, *, max_event_bytes: int) -> None:
        self._tasks = tasks
        self._max_event_bytes = max_event_bytes

    def validate(self, value: bytes | None) -> tuple[FeedbackEvent, TaskDefinition] | Rejection:
        if not value:
            return Rejection("empty_payload", "record has no value (null or empty)")
        try:
            event = serde.decode(FeedbackEvent, value, max_bytes=self._max_event_bytes)
        except SerdeError as exc:
            return Rejection(exc.reason, str(exc), exc.field)
        task = self._tasks(event.task)
        if task is None:
            return Rejection(
                "unknown_task",
                f"unknown task {event.task!r}: apply it with `flywheel tasks apply FILE`",
                "task",
            )
        try:
            task.check_features(event.features)
            task.check_label(event.label)
        except SerdeError as exc:
            return Rejection(exc.reason, str(exc), exc.field)
        return event, task
