"""Flywheel's one exception hierarchy.

Every error the library raises on purpose derives from :class:`FlywheelError`, so a
service can catch "anything Flywheel refused" in one place and let real bugs through::

    FlywheelError
    ├── ConfigError               a setting is missing or unsafe (raised at start-up)
    ├── SerdeError                bytes could not become an event
    │   └── EventValidationError  they parsed, but a field is wrong (names the field)
    ├── TaskError
    │   └── UnknownTaskError      an event names a task nobody applied
    ├── ModelError
    │   └── ModelIntegrityError   a stored model's hash does not match its text
    └── DependencyUnavailable     Kafka/Redis did not answer within the bounded wait
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DependencyUnavailable",
    "EventValidationError",
    "FlywheelError",
    "ModelError",
    "ModelIntegrityError",
    "SerdeError",
    "TaskError",
    "UnknownTaskError",
]


class FlywheelError(Exception):
    """Base of every error Flywheel raises deliberately."""


class ConfigError(FlywheelError):
    """A setting is missing, malformed or unsafe."""


class SerdeError(FlywheelError):
    """Bytes could not be decoded into an event.

    ``reason`` is a short machine-readable code (``broken_json``, ``oversized``,
    ``invalid_field``, ...) used as the DLQ reason; ``field`` names the offending
    field path when one is known (``features.steps``).
    """

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


class EventValidationError(SerdeError):
    """The payload parsed but a field broke the schema; ``field`` names it."""

    def __init__(self, message: str, *, field: str, reason: str = "invalid_field") -> None:
        super().__init__(message, reason=reason, field=field)


class TaskError(FlywheelError):
    """Something about a task definition or a task name is wrong."""


class UnknownTaskError(TaskError):
    """An event or request names a task that was never applied."""

    def __init__(self, task: str) -> None:
        super().__init__(f"unknown task {task!r}: apply it with `flywheel tasks apply FILE`")
        self.task = task


class ModelError(FlywheelError):
    """A model artifact could not be used."""


class ModelIntegrityError(ModelError):
    """A model's text does not hash to the hash recorded with it."""


class DependencyUnavailable(FlywheelError):
    """Kafka, Redis or another dependency did not answer within a bounded wait."""
