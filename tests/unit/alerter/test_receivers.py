"""Receiver payload shapes, escaping, signatures, SSRF refusal and HTTP classification."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import httpx
import pytest
from pydantic import SecretStr

from alerter.receivers.base import (
    PermanentDeliveryError,
    RetryableDeliveryError,
    TargetGuard,
    parse_retry_after,
)
from alerter.receivers.config import (
    PagerDutyReceiverConfig,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alerter.receivers.email import email_message
from alerter.receivers.pagerduty import PagerDutyReceiver, dedup_key
from alerter.receivers.slack import SlackReceiver
from alerter.receivers.webhook import WebhookReceiver
from alerter.state import NotificationIntent, idempotency_key
from flywheel.events import Alert, AlertSeverity, AlertState
from tests.unit.alerter.conftest import make_alert

LOOPBACK = TargetGuard([ipaddress.ip_network("127.0.0.0/8")])


def intent_for(*alerts: Alert) -> NotificationIntent:
    firing = {a.fingerprint: a.starts_at for a in alerts if a.state is AlertState.FIRING}
    resolved = frozenset(a.fingerprint for a in alerts if a.state is AlertState.RESOLVED)
    return NotificationIntent(
        idempotency_key=idempotency_key("r", "0:{}", 1, firing, resolved),
        receiver="r",
        group_key="0:{}",
        route_id="0",
        sequence=1,
        group_labels={"task": "daisy"},
        alerts=list(alerts),
        firing=frozenset(firing),
        resolved=resolved,
    )


class Recorder:
    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses) or [httpx.Response(200)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._responses.pop(0) if len(self._responses) > 1 else self._responses[0]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


HOSTILE = make_alert(task="<!channel> & <https://evil|click>", instance="<b>x</b>")


async def test_slack_blocks_escape_label_text() -> None:
    recorder = Recorder()
    config = SlackReceiverConfig(
        name="s", type="slack", webhook_url=SecretStr("http://127.0.0.1:9/services/T0/B0/XXXX")
    )
    async with recorder.client() as client:
        status = await SlackReceiver(config, client, LOOPBACK).send(intent_for(HOSTILE))
    assert status == 200
    body = json.loads(recorder.requests[0].content)
    assert body["blocks"][0]["type"] == "header"
    section = body["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert "<!channel>" not in section["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in section["text"]
    assert "text" in body


async def test_pagerduty_trigger_and_resolve_share_a_deterministic_dedup_key() -> None:
    recorder = Recorder(httpx.Response(202))
    config = PagerDutyReceiverConfig(
        name="pd",
        type="pagerduty",
        routing_key=SecretStr("R0UTINGKEY"),
        url="http://127.0.0.1:9/v2/enqueue",
    )
    firing = make_alert(severity=AlertSeverity.CRITICAL)
    resolved = firing.model_copy(update={"state": AlertState.RESOLVED})
    async with recorder.client() as client:
        receiver = PagerDutyReceiver(config, client, LOOPBACK)
        await receiver.send(intent_for(firing))
        await receiver.send(intent_for(resolved))
    trigger, resolve = (json.loads(r.content) for r in recorder.requests)
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UTINGKEY"
    assert trigger["payload"]["severity"] == "critical"
    assert {"summary", "source", "severity", "timestamp"} <= set(trigger["payload"])
    assert resolve == {
        "routing_key": "R0UTINGKEY",
        "event_action": "resolve",
        "dedup_key": dedup_key(firing.fingerprint),
    }
    assert trigger["dedup_key"] == resolve["dedup_key"]


async def test_webhook_is_signed_with_hmac_sha256_and_carries_the_idempotency_key() -> None:
    recorder = Recorder()
    secret = "s3cret-s3cret-s3cret"
    config = WebhookReceiverConfig(
        name="w", type="webhook", url="http://127.0.0.1:9/hook", hmac_secret=SecretStr(secret)
    )
    intent = intent_for(make_alert())
    async with recorder.client() as client:
        await WebhookReceiver(config, client, LOOPBACK).send(intent)
    request = recorder.requests[0]
    timestamp = request.headers["X-Flywheel-Timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.content, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Flywheel-Signature"] == f"sha256={expected}"
    assert request.headers["Idempotency-Key"] == intent.idempotency_key
    body = json.loads(request.content)
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["alerts"][0]["fingerprint"] == intent.alerts[0].fingerprint


@pytest.mark.parametrize(
    ("response", "error", "retry_after"),
    [
        (httpx.Response(429, headers={"Retry-After": "7"}), RetryableDeliveryError, 7.0),
        (httpx.Response(503), RetryableDeliveryError, None),
        (httpx.Response(400, text="invalid payload"), PermanentDeliveryError, None),
        (httpx.Response(404), PermanentDeliveryError, None),
    ],
)
async def test_http_answers_are_classified(
    response: httpx.Response, error: type[Exception], retry_after: float | None
) -> None:
    recorder = Recorder(response)
    config = WebhookReceiverConfig(
        name="w", type="webhook", url="http://127.0.0.1:9/hook", hmac_secret=SecretStr("x" * 16)
    )
    async with recorder.client() as client:
        with pytest.raises(error) as caught:
            await WebhookReceiver(config, client, LOOPBACK).send(intent_for(make_alert()))
    if retry_after is not None:
        assert isinstance(caught.value, RetryableDeliveryError)
        assert caught.value.retry_after == retry_after


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://0.0.0.0/x",
    ],
)
async def test_internal_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await TargetGuard([]).check(url)
    assert caught.value.reason == "target_refused"


async def test_allowed_network_and_public_address_pass() -> None:
    await LOOPBACK.check("http://127.0.0.1:8080/hook")
    await TargetGuard([]).check("https://8.8.8.8/hook")


async def test_slack_url_never_leaks_into_errors() -> None:
    url = "http://127.0.0.1:9/services/T000/B000/SECRETTOKEN"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}")

    config = SlackReceiverConfig(name="s", type="slack", webhook_url=SecretStr(url))
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(RetryableDeliveryError) as caught:
            await SlackReceiver(config, client, LOOPBACK).send(intent_for(make_alert()))
    assert "SECRETTOKEN" not in str(caught.value)
    assert "SECRETTOKEN" not in repr(config)


def test_email_html_is_escaped_and_subject_single_line() -> None:
    alert = make_alert("Injected", task="x\r\nBcc: victim@example.com", instance="<script>")
    message = email_message(intent_for(alert), "alerts@example.com", ["ops@example.com"])
    assert "\n" not in message["Subject"]
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert message["Message-ID"].startswith("<")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
