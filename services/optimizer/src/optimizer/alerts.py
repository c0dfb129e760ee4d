"""The optimizer's book of active alerts: emit only on a change of state.

An alert's identity is its fingerprint (``Alert.build``: name + labels), so the same
condition on the same task is the same alert across evaluations and restarts. Firing
an alert that already fires, or resolving one that does not, emits nothing: the
``alerts`` topic carries transitions, not samples. On start the book is refilled from
the optimizer's own earlier alerts, so a condition that cleared while it was down is
still resolved.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flywheel.events import Alert, AlertSeverity, AlertState

__all__ = ["SOURCE", "AlertBook"]

SOURCE = "optimizer"


class AlertBook:
    def __init__(self) -> None:
        self._firing: dict[str, Alert] = {}
        self._outbox: list[Alert] = []

    def fire(
        self,
        name: str,
        *,
        severity: AlertSeverity,
        labels: dict[str, str],
        annotations: dict[str, str],
        at: datetime,
    ) -> Alert | None:
        """Start firing; None (nothing emitted) when it already fires."""
        alert = Alert.build(
            name,
            state=AlertState.FIRING,
            severity=severity,
            labels=labels,
            annotations=annotations,
            starts_at=at,
            source=SOURCE,
        )
        if alert.fingerprint in self._firing:
            return None
        self._firing[alert.fingerprint] = alert
        self._outbox.append(alert)
        return alert

    def resolve(
        self, fingerprint: str, *, at: datetime, annotations: dict[str, str] | None = None
    ) -> Alert | None:
        """Resolve a firing alert; None when it was not firing."""
        firing = self._firing.pop(fingerprint, None)
        if firing is None:
            return None
        resolved = firing.model_copy(
            update={
                "state": AlertState.RESOLVED,
                "ends_at": at,
                "annotations": {**firing.annotations, **(annotations or {})},
            }
        )
        self._outbox.append(resolved)
        return resolved

    def is_firing(self, fingerprint: str) -> bool:
        return fingerprint in self._firing

    def firing(self) -> list[Alert]:
        return sorted(self._firing.values(), key=lambda a: (a.name, a.fingerprint))

    def restore(self, history: Iterable[Alert]) -> int:
        """Replay earlier transitions (oldest first) without emitting; return how many fire."""
        for alert in history:
            if alert.source != SOURCE:
                continue
            if alert.state is AlertState.FIRING:
                self._firing[alert.fingerprint] = alert
            else:
                self._firing.pop(alert.fingerprint, None)
        return len(self._firing)

    def drain(self) -> list[Alert]:
        """The transitions to publish, oldest first; the outbox is emptied."""
        out, self._outbox = self._outbox, []
        return out

    def requeue(self, alerts: list[Alert]) -> None:
        """Put back transitions that could not be published, ahead of newer ones."""
        self._outbox[:0] = alerts
