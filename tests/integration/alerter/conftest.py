"""Real receivers for the alerter's integration tests, all on 127.0.0.1.

* :class:`ReceiverServer` - an aiohttp app standing in for Slack, PagerDuty and a
  signed webhook: it records every request and answers from a per-path script
  (``(status, headers)`` pairs, e.g. 429 + Retry-After, 500, 400), then 200/202.
* :class:`Mailbox` - a real SMTP server (aiosmtpd) collecting messages.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from flywheel.kafka import KafkaConfig, make_consumer


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

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(request.path, dict(request.headers), body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        marker = self.poison.get(request.path)
        if marker and marker[0] in body:
            return web.Response(status=marker[1], text="invalid event")
        script = self.scripts[request.path]
        if script:
            status, headers = script.pop(0)
            return web.Response(status=status, headers=headers, text="scripted")
        ok = 202 if request.path.startswith("/pd") else 200
        return web.Response(status=ok, text="ok")


@pytest.fixture
async def receiver_server() -> AsyncIterator[ReceiverServer]:
    server = ReceiverServer()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server.port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", server.port)
    await site.start()
    try:
        yield server
    finally:
        await runner.cleanup()


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
