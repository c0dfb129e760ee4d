"""Records the alerter writes about its notifications, shared so the CLI can read them.

* :class:`NotificationAttempt` - one delivery attempt to one receiver, on the audit topic
  ``alerts.notifications`` (key = idempotency key). ``flywheel alerts history`` reads it.
* :class:`NotificationDeadLetter` - a notification that could not be delivered (a 4xx
  other than 429, retries exhausted, a refused target), on ``alerts.dlq`` with the
  whole notification so nothing is lost. Records on ``alerts.dlq`` carry the header
  ``flywheel-kind`` (``notification`` here, ``input`` for a rejected ``Alert``
  written as :class:`~flywheel.events.DeadLetter`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from flywheel.events import AlertState, UtcDatetime, _Event, utc_now

__all__ = [
    "DLQ_KIND_HEADER",
    "AttemptOutcome",
    "NotificationAttempt",
    "NotificationDeadLetter",
]

DLQ_KIND_HEADER = "flywheel-kind"

IdempotencyKey = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"  # the receiver accepted it (2xx / SMTP 250)
    RETRYING = "retrying"  # a retryable failure (429, 5xx, network); another attempt follows
    FAILED = "failed"  # a permanent failure; the notification goes to alerts.dlq
    SUPPRESSED = "suppressed"  # nothing to send (send_resolved off): logged, not sent


class NotificationAttempt(_Event):
    """One attempt to deliver one notification to one receiver."""

    schema_version: Literal[1] = 1
    idempotency_key: IdempotencyKey
    receiver: str = Field(max_length=128)
    receiver_type: str = Field(max_length=32)
    group_key: str = Field(max_length=2_048)
    sequence: int = Field(ge=1)
    attempt: int = Field(ge=0)
    outcome: AttemptOutcome
    # True on the attempt that settled the notification (delivered, failed or suppressed).
    final: bool = False
    status: AlertState
    fingerprints: list[str] = Field(default_factory=list, max_length=10_000)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=2_000)
    retry_after_s: float | None = Field(default=None, ge=0)
    at: UtcDatetime = Field(default_factory=utc_now)


class NotificationDeadLetter(_Event):
    """A notification that will not be retried, with everything needed to resend it."""

    schema_version: Literal[1] = 1
    reason: Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]
    error: str = Field(max_length=2_000)
    idempotency_key: IdempotencyKey
    receiver: str = Field(max_length=128)
    receiver_type: str = Field(max_length=32)
    attempts: int = Field(ge=0)
    # The notification intent as the alerter stored it (alerts, group, sequence).
    notification: dict[str, Any]
    at: UtcDatetime = Field(default_factory=utc_now)
