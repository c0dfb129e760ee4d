"""The sinks read exactly what the alerter sends (its own payload and mail builders)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from alerter.receivers.email import email_message
from alerter.receivers.webhook import sign, webhook_payload
from alerter.state import NotificationIntent
from flywheel.events import Alert, AlertSeverity, AlertState
from flywheel_demo.sinks import (
    Delivery,
    DeliveryLog,
    deliveries_from_mail,
    deliveries_from_webhook,
    signature,
)

TASK = "demo.oracle.knowledge-quality"


def intent(*states: AlertState) -> NotificationIntent:
    alerts = [
        Alert.build(
            "ModelDriftDetected",
            state=state,
            severity=AlertSeverity.WARNING,
            labels={"task": f"{TASK}{index}", "team": "ml"},
            annotations={"summary": "the error rate changed (0.05 -> 0.5)"},
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for index, state in enumerate(states)
    ]
    return NotificationIntent(
        idempotency_key="0" * 32,
        receiver="demo-webhook",
        group_key="g",
        route_id="0.0",
        sequence=1,
        group_labels={"alertname": "ModelDriftDetected"},
        alerts=alerts,
        firing=frozenset(a.fingerprint for a in alerts if a.state is AlertState.FIRING),
        resolved=frozenset(a.fingerprint for a in alerts if a.state is AlertState.RESOLVED),
    )


def test_signature_matches_the_alerters() -> None:
    body = b'{"alerts": []}'
    assert signature("s3cret", "1700000000", body) == sign("s3cret", "1700000000", body)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", "1700000000", body) == "sha256=" + expected


def test_webhook_body_gives_one_delivery_per_alert() -> None:
    payload = webhook_payload(intent(AlertState.FIRING, AlertState.RESOLVED))
    found = deliveries_from_webhook(payload, at=5.0)
    assert found == [
        Delivery("webhook", 5.0, "ModelDriftDetected", f"{TASK}0", "firing"),
        Delivery("webhook", 5.0, "ModelDriftDetected", f"{TASK}1", "resolved"),
    ]


def test_mail_gives_one_delivery_per_alert() -> None:
    message = email_message(
        intent(AlertState.FIRING, AlertState.RESOLVED), "a@b.invalid", ["c@d.invalid"]
    )
    found = deliveries_from_mail(message, at=7.0)
    assert found == [
        Delivery("smtp", 7.0, "ModelDriftDetected", f"{TASK}0", "firing"),
        Delivery("smtp", 7.0, "ModelDriftDetected", f"{TASK}1", "resolved"),
    ]


def test_delivery_log_counts_by_sink_and_alert() -> None:
    log = DeliveryLog()
    log.add(Delivery("webhook", 1.0, "ModelDriftDetected", "t", "firing"))
    log.add(Delivery("smtp", 1.0, "ModelDriftDetected", "t", "firing"))
    log.add(Delivery("webhook", 2.0, "LiveAccuracyLow", "t", "firing"))
    assert log.count("webhook") == 2
    assert log.count("webhook", "ModelDriftDetected") == 1
    assert log.count("smtp", "LiveAccuracyLow") == 0
