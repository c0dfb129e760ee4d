"""Where the demo's alerts land: a signed-webhook receiver and an SMTP sink, on loopback.

Both stand in for the real thing (a team's incident webhook, a mail relay) and record
what the alerter delivered, so the live view and the summary count real deliveries.
The webhook receiver checks the alerter's HMAC signature exactly as a production
receiver should (constant-time compare); an unsigned or forged request gets 401 and
is not counted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Delivery", "DeliveryLog", "SmtpSink", "WebhookSink", "signature"]

MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert as a sink received it."""

    sink: str  # "webhook" | "smtp"
    at: float  # time.time() on arrival
    alertname: str
    task: str
    status: str  # "firing" | "resolved"


@dataclass
class DeliveryLog:
    """Thread-safe list of deliveries (the sinks run on their own threads)."""

    _items: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, delivery: Delivery) -> None:
        with self._lock:
            self._items.append(delivery)

    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self._items)

    def count(self, sink: str, alertname: str | None = None) -> int:
        return sum(
            1
            for d in self.all()
            if d.sink == sink and (alertname is None or d.alertname == alertname)
        )


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The alerter's webhook signature: ``sha256=HMAC(secret, "{timestamp}." + body)``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def deliveries_from_webhook(body: dict[str, Any], at: float) -> list[Delivery]:
    """One :class:`Delivery` per alert in an Alertmanager-v4-shaped webhook body."""
    found = []
    for alert in body.get("alerts", []):
        labels = alert.get("labels") or {}
        found.append(
            Delivery(
                sink="webhook",
                at=at,
                alertname=str(alert.get("name") or labels.get("alertname", "?")),
                task=str(labels.get("task", "")),
                status=str(alert.get("status", "?")),
            )
        )
    return found


class WebhookSink:
    """An HTTP server on 127.0.0.1 that accepts the alerter's signed webhooks."""

    def __init__(self, log: DeliveryLog, secret: str, *, port: int = 0) -> None:
        self.log = log
        self.rejected = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_error(413)
                    return
                body = self.rfile.read(length)
                timestamp = self.headers.get("X-Flywheel-Timestamp", "")
                given = self.headers.get("X-Flywheel-Signature", "")
                if not hmac.compare_digest(given, signature(secret, timestamp, body)):
                    sink.rejected += 1
                    self.send_error(401, "bad signature")
                    return
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_error(400, "body is not JSON")
                    return
                for delivery in deliveries_from_webhook(payload, time.time()):
                    sink.log.add(delivery)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # the live view reports deliveries; no access log on the terminal

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-webhook", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def deliveries_from_mail(message: Message, at: float) -> list[Delivery]:
    """One :class:`Delivery` per alert in the alerter's mail.

    Its text part lists each alert as three lines: ``FIRING <name> (<severity>)``, the
    summary, then the labels as ``key=value, key=value``.
    """
    lines = _text_part(message).splitlines()
    found = []
    for index, line in enumerate(lines):
        match = _ALERT_LINE.match(line)
        if match is None:
            continue
        labels_line = lines[index + 2] if index + 2 < len(lines) else ""
        labels = dict(
            pair.strip().partition("=")[::2] for pair in labels_line.split(",") if "=" in pair
        )
        found.append(
            Delivery(
                sink="smtp",
                at=at,
                alertname=match["name"],
                task=labels.get("task", ""),
                status=match["state"].lower(),
            )
        )
    return found


_ALERT_LINE = re.compile(r"^(?P<state>FIRING|RESOLVED) (?P<name>\S+) \(")


def _text_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode("utf-8", "replace")
    return ""


class _MailHandler:
    def __init__(self, log: DeliveryLog) -> None:
        self.log = log
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        message = message_from_bytes(data)
        self.messages.append(message)
        for delivery in deliveries_from_mail(message, time.time()):
            self.log.add(delivery)
        return "250 OK"


class SmtpSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every mail it is given."""

    def __init__(self, log: DeliveryLog, *, port: int) -> None:
        self._handler = _MailHandler(log)
        self.port = port
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=port)

    @property
    def messages(self) -> list[Message]:
        return list(self._handler.messages)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
