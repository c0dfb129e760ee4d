"""``flywheel alerts silence | silences | expire | history`` against a running alerter."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from alerter.service import AlerterService
from flywheel.events import Alert, AlertSeverity, AlertState
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.serde import encode
from flywheel.topics import ALERTS
from flywheel_cli.__main__ import main
from tests.integration.alerter.conftest import API_KEY, ReceiverServer, wait_until


def _alert(task: str) -> Alert:
    return Alert.build(
        "QueueBacklog",
        state=AlertState.FIRING,
        severity=AlertSeverity.WARNING,
        labels={"task": task},
        starts_at=datetime.now(UTC) - timedelta(minutes=5),
    )


async def test_silence_from_the_cli_mutes_and_history_shows_attempts(
    running: tuple[AlerterService, int],
    kafka_namespace: KafkaConfig,
    receiver_server: ReceiverServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, port = running
    monkeypatch.setenv("FLYWHEEL_ALERTER_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("FLYWHEEL_ALERTER_API_KEY", API_KEY)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_namespace.bootstrap_servers)
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", kafka_namespace.topic_prefix)

    async def cli(*argv: str) -> str:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    created = await cli("alerts", "silence", 'task="muted"', "--duration", "1h", "--comment", "t")
    silence_id = created.split()[1]
    listed = json.loads(await cli("alerts", "silences", "--json"))
    assert [(s["id"], s["active"]) for s in listed] == [(silence_id, True)]

    producer = make_producer(kafka_namespace)
    await producer.start()
    try:
        for task in ("muted", "loud"):
            alert = _alert(task)
            await producer.send_and_wait(
                kafka_namespace.topic(ALERTS), encode(alert), key=alert.fingerprint.encode()
            )
    finally:
        await producer.stop()
    await wait_until(
        lambda: any(b'"loud"' in r.body for r in receiver_server.on("/hook")),
        timeout_s=20,
        what="the unsilenced alert",
    )
    await asyncio.sleep(1.5)  # past group_wait + group_interval of the muted one
    assert not any(b'"muted"' in r.body for r in receiver_server.on("/hook"))

    raw_history = await cli("alerts", "history", "--json")
    history = [json.loads(line) for line in raw_history.splitlines()]
    assert any(h["receiver"] == "hook" and h["outcome"] == "delivered" for h in history)

    expired = await cli("alerts", "expire", silence_id)
    assert silence_id in expired
    listed = json.loads(await cli("alerts", "silences", "--json"))
    assert [s["active"] for s in listed] == [False]
