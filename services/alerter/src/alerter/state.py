"""The alerter's durable state, as it is stored on the compacted ``alerts.state`` topic.

Keys (one record per key survives compaction; a tombstone deletes it):

* ``alert/<fingerprint>``          -> :class:`flywheel.events.Alert` (the latest state seen)
* ``silence/<id>``                 -> :class:`Silence`
* ``nflog/<receiver>/<group key>`` -> :class:`NotificationLogEntry` (what the receiver last got)
* ``intent/<idempotency key>``     -> :class:`NotificationIntent` (decided, not yet settled)
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from flywheel.events import Alert, AlertState, UtcDatetime, utc_now

__all__ = [
    "NotificationIntent",
    "NotificationLogEntry",
    "Silence",
    "idempotency_key",
]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Silence(_State):
    schema_version: Literal[1] = 1
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    matchers: list[str] = Field(min_length=1, max_length=64)
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    created_by: str = Field(max_length=128)
    comment: str = Field(default="", max_length=1_000)
    created_at: UtcDatetime = Field(default_factory=utc_now)

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


class NotificationLogEntry(_State):
    """What a receiver was last told about a group (Alertmanager's nflog)."""

    schema_version: Literal[1] = 1
    receiver: str
    group_key: str
    sequence: int = Field(ge=1)
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: UtcDatetime

    def key(self) -> str:
        return nflog_key(self.receiver, self.group_key)


def nflog_key(receiver: str, group_key: str) -> str:
    return f"nflog/{receiver}/{group_key}"


def idempotency_key(
    receiver: str,
    group_key: str,
    sequence: int,
    firing: dict[str, datetime],
    resolved: frozenset[str],
) -> str:
    """Deterministic key of one notification: receiver + group + sequence + alert states.

    ``firing`` maps each firing fingerprint to its ``starts_at``: a new firing episode of
    the same alert gets a new key even after the group's notification log was cleared.
    The key is stored with the intent before anything is sent, so every resend of one
    notification (after a crash or a retry) carries the same key.
    """
    parts = [
        receiver,
        group_key,
        str(sequence),
        ",".join(f"{fp}@{firing[fp].isoformat()}" for fp in sorted(firing)),
        ",".join(sorted(resolved)),
    ]
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]


class NotificationIntent(_State):
    """A notification the alerter decided to send; settled by a final audit record."""

    schema_version: Literal[1] = 1
    idempotency_key: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    receiver: str
    group_key: str
    route_id: str
    sequence: int = Field(ge=1)
    group_labels: dict[str, str]
    alerts: list[Alert]
    # Fingerprints the receiver will know as firing / resolved once this is delivered.
    firing: frozenset[str]
    resolved: frozenset[str]
    # False when the route does not send resolved notifications: the nflog is still
    # updated (so the group is cleared) but nothing goes out.
    send: bool = True
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @property
    def status(self) -> AlertState:
        return AlertState.FIRING if self.firing else AlertState.RESOLVED

    def key(self) -> str:
        return f"intent/{self.idempotency_key}"

    def log_entry(self, sent_at: datetime) -> NotificationLogEntry:
        return NotificationLogEntry(
            receiver=self.receiver,
            group_key=self.group_key,
            sequence=self.sequence,
            firing=self.firing,
            resolved=self.resolved,
            sent_at=sent_at,
        )

    def firing_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.state is AlertState.FIRING]

    def resolved_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.state is AlertState.RESOLVED]
