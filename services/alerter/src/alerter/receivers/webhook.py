"""Generic JSON webhooks, signed with HMAC-SHA256.

Body: Alertmanager's webhook v4 shape plus ``idempotencyKey``. Headers:

* ``Idempotency-Key``      - the same for every resend of one notification;
* ``X-Flywheel-Timestamp`` - unix seconds when signed;
* ``X-Flywheel-Signature`` - ``sha256=`` + hex HMAC-SHA256 over ``"{timestamp}." + body``.

A receiver verifies the signature with a constant-time compare and may reject stale
timestamps to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson

from alerter.receivers.base import TargetGuard, post
from alerter.receivers.config import WebhookReceiverConfig
from alerter.receivers.render import common_labels
from alerter.state import NotificationIntent

__all__ = ["WebhookReceiver", "sign", "webhook_payload"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_payload(intent: NotificationIntent) -> dict[str, object]:
    alerts = intent.alerts
    annotations = [a.annotations for a in alerts]
    common_annotations = (
        {k: v for k, v in annotations[0].items() if all(x.get(k) == v for x in annotations)}
        if annotations
        else {}
    )
    return {
        "version": "4",
        "idempotencyKey": intent.idempotency_key,
        "groupKey": intent.group_key,
        "sequence": intent.sequence,
        "status": intent.status.value,
        "receiver": intent.receiver,
        "groupLabels": intent.group_labels,
        "commonLabels": common_labels(alerts),
        "commonAnnotations": common_annotations,
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": a.state.value,
                "name": a.name,
                "severity": a.severity.value,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at.isoformat(),
                "endsAt": a.ends_at.isoformat() if a.ends_at else None,
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }


class WebhookReceiver:
    kind = "webhook"

    def __init__(
        self, config: WebhookReceiverConfig, client: httpx.AsyncClient, guard: TargetGuard
    ) -> None:
        self.name = config.name
        self.rate_key = "webhook:" + config.url
        self.rate_per_s = config.rate_per_s
        self.max_attempts = config.max_attempts
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._config = config
        self._client = client
        self._guard = guard

    async def send(self, intent: NotificationIntent) -> int:
        body = orjson.dumps(webhook_payload(intent))
        secret = self._config.hmac_secret.get_secret_value()
        timestamp = str(int(time.time()))
        return await post(
            self._client,
            self._guard,
            self._config.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": intent.idempotency_key,
                "X-Flywheel-Timestamp": timestamp,
                "X-Flywheel-Signature": sign(secret, timestamp, body),
            },
            timeout_s=self._config.timeout_s,
            what=f"webhook receiver {self.name}",
            secrets=(secret,),
        )
