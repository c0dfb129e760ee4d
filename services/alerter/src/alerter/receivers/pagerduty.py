"""PagerDuty Events API v2: one event per alert, ``trigger`` while firing, ``resolve``
when resolved, with a ``dedup_key`` derived from the alert fingerprint so a resend (or a
resolve after a restart) lands on the same PagerDuty alert."""

from __future__ import annotations

import hashlib

import httpx
import orjson

from alerter.receivers.base import TargetGuard, post
from alerter.receivers.config import PagerDutyReceiverConfig
from alerter.receivers.render import alert_summary
from alerter.state import NotificationIntent
from flywheel.events import Alert, AlertSeverity, AlertState

__all__ = ["PagerDutyReceiver", "dedup_key", "pagerduty_event"]

_SEVERITY = {
    AlertSeverity.CRITICAL: "critical",
    AlertSeverity.WARNING: "warning",
    AlertSeverity.INFO: "info",
}


def dedup_key(fingerprint: str) -> str:
    """Stable per alert, and not the raw fingerprint (which is our internal id)."""
    return "flywheel-" + hashlib.sha256(f"flywheel:{fingerprint}".encode()).hexdigest()[:32]


def pagerduty_event(
    alert: Alert, intent: NotificationIntent, routing_key: str, source: str
) -> dict[str, object]:
    if alert.state is AlertState.RESOLVED:
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(alert.fingerprint),
        }
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert.fingerprint),
        "payload": {
            "summary": f"{alert.name}: {alert_summary(alert)}"[:1024],
            "source": alert.labels.get("instance") or alert.labels.get("task") or source,
            "severity": _SEVERITY[alert.severity],
            "timestamp": alert.starts_at.isoformat(),
            "component": alert.labels.get("service"),
            "group": intent.group_labels.get("task"),
            "class": alert.name,
            "custom_details": {
                "labels": alert.labels,
                "annotations": alert.annotations,
                "fingerprint": alert.fingerprint,
                "group_key": intent.group_key,
                "idempotency_key": intent.idempotency_key,
            },
        },
        "client": "Flywheel alerter",
    }


class PagerDutyReceiver:
    kind = "pagerduty"

    def __init__(
        self, config: PagerDutyReceiverConfig, client: httpx.AsyncClient, guard: TargetGuard
    ) -> None:
        self.name = config.name
        key = config.routing_key.get_secret_value()
        # Bucket by routing key (hashed: the key is a secret) - PagerDuty throttles per key.
        self.rate_key = "pagerduty:" + hashlib.sha256(key.encode()).hexdigest()
        self.rate_per_s = config.rate_per_s
        self.max_attempts = config.max_attempts
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._config = config
        self._client = client
        self._guard = guard

    async def send(self, intent: NotificationIntent) -> int:
        key = self._config.routing_key.get_secret_value()
        status = 202
        # Events go one by one; if one fails the whole notification is retried, which
        # is safe because PagerDuty de-duplicates on dedup_key.
        for alert in intent.alerts:
            event = pagerduty_event(alert, intent, key, self._config.source)
            status = await post(
                self._client,
                self._guard,
                self._config.url,
                content=orjson.dumps(event),
                headers={"Content-Type": "application/json"},
                timeout_s=self._config.timeout_s,
                what=f"pagerduty receiver {self.name}",
                secrets=(key,),
            )
        return status
