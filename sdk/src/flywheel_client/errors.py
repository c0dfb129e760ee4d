"""The SDK's one exception hierarchy.

Catch :class:`FlywheelClientError` to handle anything the SDK raises on purpose::

    FlywheelClientError
    ├── ValidationRejected    a field is wrong (422 from the predictor, or a feedback
    │                         event refused locally before anything is sent); names it
    ├── Unauthorized          the API key is missing or unknown (401) or not scoped
    │                         to the task (403)
    ├── NoModel               the task has no model yet (404)
    └── PlatformUnavailable   connection errors, timeouts, 5xx or 429 until the retry
                              budget ran out; Kafka not answering for feedback

A ``fallback`` given to ``predict`` replaces :class:`PlatformUnavailable` and
:class:`NoModel` (nothing to serve either way); it never hides a caller's mistake
(:class:`ValidationRejected`, :class:`Unauthorized`).
"""

from __future__ import annotations

__all__ = [
    "FlywheelClientError",
    "NoModel",
    "PlatformUnavailable",
    "Unauthorized",
    "ValidationRejected",
]


class FlywheelClientError(Exception):
    """Base of every error the SDK raises deliberately."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ValidationRejected(FlywheelClientError):
    """A request or event was refused because of one field (``field``, dotted path)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None,
        reason: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.field = field
        self.reason = reason


class Unauthorized(FlywheelClientError):
    """401 (no or unknown API key) or 403 (key not allowed for this task)."""


class NoModel(FlywheelClientError):
    """404: the predictor has no champion for this task yet."""


class PlatformUnavailable(FlywheelClientError):
    """The platform did not answer usefully within the time budget."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message, status=status)
        self.attempts = attempts
