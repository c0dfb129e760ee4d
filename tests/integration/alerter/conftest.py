"""Real receivers for the alerter's integration tests, all on 127.0.0.1.

* :class:`ReceiverServer` - a small ASGI app (uvicorn) standing in for Slack, PagerDuty and a
  signed webhook: it records every request and answers from a per-path script
  (``(status, headers)`` pairs, e.g. 429 + Retry-After, 500, 400), then 200/202.
* :class:`Mailbox` - a real SMTP server (aiosmtpd) collecting messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import orjson
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from alerter.config import Settings
from alerter.routing import parse_config
from alerter.service import AlerterService
from flywheel.kafka import KafkaConfig, make_consumer

HOOK_SECRET = "hook-secret-0123456789"
API_KEY = "integration-api-key-0123"


def alerter_config(server: ReceiverServer, mailbox: Mailbox) -> dict[str, object]:
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["..."],
            "group_wait": "200ms",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pd", "continue": True},
                {"matchers": ['team="web"'], "receiver": "slack", "continue": True},
                {"matchers": ['team="web"'], "receiver": "mail", "continue": True},
                {"matchers": ['alertname=~".*"'], "receiver": "hook"},
            ],
        },
        "receivers": [
            {"name": "slack", "type": "slack", "webhook_url": server.url("/slack/T0/B0/X")},
            {
                "name": "pd",
                "type": "pagerduty",
                "routing_key": "PDKEY0123",
                "url": server.url("/pd/v2/enqueue"),
            },
            {
                "name": "hook",
                "type": "webhook",
                "url": server.url("/hook"),
                "hmac_secret": HOOK_SECRET,
                "backoff_initial_s": 0.2,
            },
            {
                "name": "mail",
                "type": "email",
                "to": ["ops@example.com"],
                "from": "alerter@example.com",
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "security": "none",
            },
        ],
        "allowed_target_networks": ["127.0.0.1/32"],
    }


@pytest.fixture
async def running(
    kafka_namespace: KafkaConfig,
    group_id: str,
    receiver_server: ReceiverServer,
    mailbox: Mailbox,
) -> AsyncIterator[tuple[AlerterService, int]]:
    port = free_port()
    settings = Settings(
        kafka_bootstrap_servers=kafka_namespace.bootstrap_servers,
        topic_prefix=kafka_namespace.topic_prefix,
        alerter_http_port=port,
        alerter_consumer_group=group_id,
        alerter_api_key=SecretStr(API_KEY),
        alerter_shutdown_grace_s=1.0,
        heartbeat_interval_s=0.5,
    )
    service = AlerterService(settings, parse_config(alerter_config(receiver_server, mailbox)))
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        yield service, port
    finally:
        await service.stop()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class ReceiverServer:
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Per-path status for requests whose body contains a marker (e.g. always 400).
    poison: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    delay_s: float = 0.0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A bare ASGI app (served by uvicorn): record, optionally stall, answer."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().title(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        self.requests.append(Received(path, headers, body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = 202 if path.startswith("/pd") else 200
        extra: dict[str, str] = {}
        marker = self.poison.get(path)
        if marker and marker[0] in body:
            status = marker[1]
        elif self.scripts[path]:
            status, extra = self.scripts[path].pop(0)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in extra.items()],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def receiver_server() -> AsyncIterator[ReceiverServer]:
    server = ReceiverServer(port=free_port())
    http = _QuietServer(
        uvicorn.Config(
            server,
            host="127.0.0.1",
            port=server.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(http.serve())
    while not http.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        http.should_exit = True
        await task


class _Collect:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Mailbox:
    port: int
    handler: _Collect

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    handler = _Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Mailbox(port, handler)
    finally:
        controller.stop()


async def read_topic(
    config: KafkaConfig, topic: str, *, min_records: int = 0, timeout_s: float = 20.0
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Every committed record of ``topic`` (waiting until ``min_records`` arrived)."""
    consumer = make_consumer(config, topic, group_id=None, read_committed=True)
    await consumer.start()
    out: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        idle = 0
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            records = [r for rs in batches.values() for r in rs]
            out.extend((r.key, r.value, list(r.headers)) for r in records)
            idle = 0 if records else idle + 1
            if len(out) >= min_records and idle >= 2:
                break
    finally:
        await consumer.stop()
    return out


async def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)
