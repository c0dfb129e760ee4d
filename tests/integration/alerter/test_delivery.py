"""The alerter in-process against the real Kafka, local HTTP receivers and a real SMTP
server: payload shapes, retries on 429/500, a 400 parked in alerts.dlq, the audit trail,
a malformed input dead-lettered, and a PagerDuty resolve on the same dedup_key."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from alerter.service import AlerterService
from flywheel.alerting import DLQ_KIND_HEADER, AttemptOutcome, NotificationAttempt
from flywheel.events import Alert, AlertSeverity, AlertState
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.serde import decode, encode
from flywheel.topics import ALERTS, ALERTS_DLQ, ALERTS_NOTIFICATIONS
from tests.integration.alerter.conftest import (
    API_KEY,
    HOOK_SECRET,
    Mailbox,
    ReceiverServer,
    read_topic,
    wait_until,
)
from tests.integration.heartbeats import wait_for_heartbeat


async def publish(config: KafkaConfig, *payloads: bytes) -> None:
    producer: AIOKafkaProducer = make_producer(config)
    await producer.start()
    try:
        for payload in payloads:
            await producer.send_and_wait(config.topic(ALERTS), payload, key=b"k")
    finally:
        await producer.stop()


def alert(name: str, severity: AlertSeverity, **labels: str) -> Alert:
    return Alert.build(
        name,
        state=AlertState.FIRING,
        severity=severity,
        labels=labels,
        annotations={"summary": f"{name} <b>&</b> <!channel>"},
        starts_at=datetime.now(UTC) - timedelta(minutes=5),
    )


async def test_every_receiver_gets_its_payload_with_retries_and_dead_letters(
    running: tuple[AlerterService, int],
    kafka_namespace: KafkaConfig,
    receiver_server: ReceiverServer,
    mailbox: Mailbox,
) -> None:
    receiver_server.scripts["/slack/T0/B0/X"] = [(429, {"Retry-After": "1"})]
    receiver_server.scripts["/pd/v2/enqueue"] = [(500, {})]
    receiver_server.poison["/hook"] = (b"Unprocessable", 400)
    critical = alert("PredictorDown", AlertSeverity.CRITICAL, task="daisy")
    web_alert = alert("LatencyHigh", AlertSeverity.WARNING, team="web")
    refused = alert("Unprocessable", AlertSeverity.INFO, task="x")
    await publish(kafka_namespace, encode(critical), encode(web_alert), encode(refused), b"{oops")

    pd, slack, hook = "/pd/v2/enqueue", "/slack/T0/B0/X", "/hook"
    await wait_until(
        lambda: (
            len(receiver_server.on(pd)) >= 2
            and len(receiver_server.on(slack)) >= 2
            and len(receiver_server.on(hook)) >= 3
            and len(mailbox.messages) >= 1
        ),
        timeout_s=30,
        what="every receiver",
    )
    # PagerDuty: 500 then retried; Events API v2 trigger shape.
    trigger = receiver_server.on(pd)[-1].json()
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "PDKEY0123"
    assert trigger["payload"]["severity"] == "critical"
    # Slack: 429 + Retry-After then delivered; blocks with escaped text.
    slack_body = receiver_server.on(slack)[-1].json()
    assert slack_body["blocks"][0]["type"] == "header"
    assert "<!channel>" not in orjson.dumps(slack_body).decode()
    # Webhook: signed, one per alert (group_by: ...), the poisoned one refused with 400.
    for request in receiver_server.on(hook):
        timestamp = request.headers["X-Flywheel-Timestamp"]
        mac = hmac.new(
            HOOK_SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
        )
        assert request.headers["X-Flywheel-Signature"] == "sha256=" + mac.hexdigest()
    # Email through a real SMTP server, HTML escaped.
    html = next(p for p in mailbox.messages[0].walk() if p.get_content_type() == "text/html")
    text = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in text and "<b>&</b>" not in text

    dlq = await read_topic(kafka_namespace, kafka_namespace.topic(ALERTS_DLQ), min_records=2)
    kinds = sorted(dict(headers)[DLQ_KIND_HEADER].decode() for _, _, headers in dlq)
    assert kinds == ["input", "notification"]
    audit = [
        decode(NotificationAttempt, value or b"")
        for _, value, _ in await read_topic(
            kafka_namespace, kafka_namespace.topic(ALERTS_NOTIFICATIONS), min_records=6
        )
    ]
    outcomes = {(a.receiver, a.outcome) for a in audit}
    assert ("slack", AttemptOutcome.RETRYING) in outcomes
    assert ("slack", AttemptOutcome.DELIVERED) in outcomes
    assert ("pd", AttemptOutcome.RETRYING) in outcomes
    assert ("hook", AttemptOutcome.FAILED) in outcomes
    # The heartbeat counts the same: both dead letters, sends, the refused notification.
    beat = await wait_for_heartbeat(
        kafka_namespace, "alerter", lambda b: b.gauges.get("dlq_total") == 2
    )
    assert beat.gauges["request_errors_total"] == 1
    assert beat.gauges["notifications_sent_total"] >= 3
    assert beat.gauges["requests_total"] >= 4
    assert beat.gauges["alerts"] == 3
    assert "pending_intents" in beat.gauges and beat.rss_bytes > 0

    # The resolve reaches PagerDuty on the same dedup_key.
    resolved = critical.model_copy(update={"state": AlertState.RESOLVED})
    await publish(kafka_namespace, encode(resolved))
    await wait_until(
        lambda: any(r.json()["event_action"] == "resolve" for r in receiver_server.on(pd)),
        timeout_s=20,
        what="the PagerDuty resolve",
    )
    resolve = next(
        r.json() for r in receiver_server.on(pd) if r.json()["event_action"] == "resolve"
    )
    assert resolve["dedup_key"] == trigger["dedup_key"]


async def test_alertmanager_webhook_over_http_reaches_receivers(
    running: tuple[AlerterService, int], receiver_server: ReceiverServer
) -> None:
    _, port = running
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "FromPrometheus", "job": "x"},
                "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        denied = await client.post("/api/v1/receive/alertmanager", json=body)
        assert denied.status_code == 401
        accepted = await client.post(
            "/api/v1/receive/alertmanager", json=body, headers={"X-API-Key": API_KEY}
        )
        assert accepted.status_code == 202
    await wait_until(
        lambda: any(b"FromPrometheus" in r.body for r in receiver_server.on("/hook")),
        timeout_s=20,
        what="the forwarded Alertmanager alert",
    )
