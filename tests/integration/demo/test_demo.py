"""``make demo`` for real, shortened: the demo's own services on the running Kafka and
Redis, three simulated services through the SDK, a drift, the optimizer's drift alert
through the alerter to a webhook and an SMTP sink on loopback, a PNG, and a clean exit."""

from __future__ import annotations

import asyncio
import io
import os
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from flywheel_cli.processes import port_open
from flywheel_demo.alerting import DRIFT_ALERT
from flywheel_demo.run import DRIFT_STAGGER_S, DemoOptions, run_demo
from flywheel_demo.sinks import DeliveryLog, SmtpSink, WebhookSink, signature
from flywheel_demo.stack import free_port
from tests.integration.conftest import StackEndpoints

pytestmark = pytest.mark.integration


def test_webhook_sink_counts_signed_calls_only() -> None:
    log = DeliveryLog()
    sink = WebhookSink(log, "hook-secret-0123456789")
    sink.start()
    try:
        body = (
            b'{"alerts": [{"name": "ModelDriftDetected", "status": "firing",'
            b' "labels": {"alertname": "ModelDriftDetected", "task": "demo.t"}}]}'
        )
        stamp = str(int(time.time()))
        good = signature("hook-secret-0123456789", stamp, body)
        headers = {"X-Flywheel-Timestamp": stamp, "Content-Type": "application/json"}
        ok = httpx.post(sink.url, content=body, headers={**headers, "X-Flywheel-Signature": good})
        forged = httpx.post(
            sink.url, content=body, headers={**headers, "X-Flywheel-Signature": "sha256=00"}
        )
    finally:
        sink.stop()
    assert (ok.status_code, forged.status_code) == (200, 401)
    assert log.count("webhook", "ModelDriftDetected") == 1
    assert sink.rejected == 1


def test_smtp_sink_receives_mail() -> None:
    log = DeliveryLog()
    sink = SmtpSink(log, port=free_port())
    sink.start()
    try:
        message = EmailMessage()
        message["Subject"] = "[FIRING:1] ModelDriftDetected"
        message["From"], message["To"] = "a@demo.invalid", "b@demo.invalid"
        message.set_content(
            "[FIRING:1] ModelDriftDetected\n\nFIRING ModelDriftDetected (warning)\n"
            "  the error rate changed\n  task=demo.t\n"
        )
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
            client.send_message(message)
    finally:
        sink.stop()
    assert [(d.alertname, d.task, d.status) for d in log.all()] == [
        ("ModelDriftDetected", "demo.t", "firing")
    ]
    assert len(sink.messages) == 1


async def _topics_with(prefix: str, bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="flywheel-tests")
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()


def test_short_demo_learns_drifts_alerts_and_cleans_up(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "REDIS_URL": stack.redis.url,
    }
    output = io.StringIO()
    result = run_demo(
        DemoOptions(duration_s=36.0, rate=40.0, output_dir=tmp_path, live=False),
        Console(file=output, width=160),
        env=env,
    )
    summary = result.summary
    log = output.getvalue()
    assert summary.ok, log
    assert len(summary.tasks) == 3
    for task in summary.tasks:
        # 40/s for 36 s, minus what a loaded 2-core machine cannot keep up with.
        assert task.feedback_sent >= 600, (task, log)
        assert task.errors == 0
        assert task.versions >= 3, task  # a flush every 8 s, a new champion each time
        assert task.predictions - task.fallbacks >= task.predictions / 2
        # The midpoint plus the service's fixed offset (the drift is not timed to champions).
        assert task.drift_at is not None and 18.0 <= task.drift_at <= 19.0 + 2 * DRIFT_STAGGER_S
        assert task.accuracy_before is not None and task.accuracy_before >= 0.85, task
        assert task.accuracy_after is not None
        assert task.accuracy_after <= task.accuracy_before - 0.15, task
    # The optimizer noticed, the alerter delivered to both sinks, after the drift only.
    assert summary.drift_alert_delivered, log
    assert summary.before_drift == 0
    assert result.deliveries.count("webhook", DRIFT_ALERT) >= 1
    assert result.deliveries.count("smtp", DRIFT_ALERT) >= 1
    png = result.chart.read_bytes()
    assert result.chart.parent == tmp_path and png[:4] == b"\x89PNG" and len(png) > 20_000
    # Nothing of the demo is left behind: its services stopped, its topics deleted.
    assert not any(port_open("127.0.0.1", port) for port in result.ports.values())
    topics = asyncio.run(_topics_with(result.topic_prefix, stack.kafka.bootstrap_servers))
    assert topics == []
