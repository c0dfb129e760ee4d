"""``flywheel alerts silence MATCHER... | silences | expire ID | history``.

Silences go through the alerter's HTTP API (it persists them in ``alerts.state``):
``FLYWHEEL_ALERTER_URL`` (default ``http://127.0.0.1:18081``) and the API key from
``FLYWHEEL_ALERTER_API_KEY`` or ``FLYWHEEL_ALERTER_API_KEY_FILE`` - never from the
command line, where ``ps`` would show it. ``history`` reads the audit topic
``alerts.notifications`` straight from Kafka, so it works while the alerter is down.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from flywheel.alerting import NotificationAttempt
from flywheel.errors import ConfigError, FlywheelError, SerdeError
from flywheel.kafka import KafkaConfig, make_consumer, wait_for_kafka
from flywheel.serde import decode
from flywheel.topics import ALERTS_NOTIFICATIONS
from flywheel_cli.config import StackConfig

__all__ = ["register"]

DEFAULT_URL = "http://127.0.0.1:18081"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = subparsers.add_parser("alerts", help="silences and notification history")
    verbs = alerts.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")

    silence = verbs.add_parser("silence", help='mute alerts matching e.g. task="x" severity=~"w.*"')
    silence.add_argument("matchers", nargs="+", help='label matchers: name="v", !=, =~, !~')
    silence.add_argument("--duration", default="1h", help="how long (30m, 2h, 1d; default 1h)")
    silence.add_argument("--comment", default="", help="why")
    silence.add_argument("--author", default=None, help="who (default: the login name)")
    silence.set_defaults(func=_silence)

    listing = verbs.add_parser("silences", help="every silence, active and expired")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_silences)

    expire = verbs.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id")
    expire.set_defaults(func=_expire)

    history = verbs.add_parser("history", help="notification attempts (alerts.notifications)")
    history.add_argument("--limit", type=int, default=50, help="latest N attempts (default 50)")
    history.add_argument("--receiver", default=None, help="only this receiver")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.set_defaults(func=_history)


def _api_key() -> str:
    key = os.environ.get("FLYWHEEL_ALERTER_API_KEY")
    path = os.environ.get("FLYWHEEL_ALERTER_API_KEY_FILE")
    if key:
        return key
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"FLYWHEEL_ALERTER_API_KEY_FILE: {exc.strerror}") from exc
    raise ConfigError("set FLYWHEEL_ALERTER_API_KEY or FLYWHEEL_ALERTER_API_KEY_FILE")


def _request(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = os.environ.get("FLYWHEEL_ALERTER_URL", DEFAULT_URL).rstrip("/")
    try:
        response = httpx.request(
            method,
            url + path,
            json=body,
            headers={"Authorization": f"Bearer {_api_key()}"},
            timeout=10.0,
        )
    except httpx.TransportError as exc:
        raise FlywheelError(f"alerter at {url} did not answer: {type(exc).__name__}") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise FlywheelError(f"alerter refused ({response.status_code}): {detail}")
    return response.json()


def _silence(args: argparse.Namespace) -> int:
    created = _request(
        "POST",
        "/api/v1/silences",
        {
            "matchers": args.matchers,
            "duration": args.duration,
            "comment": args.comment,
            "created_by": args.author or getpass.getuser(),
        },
    )
    print(f"silence {created['id']} until {created['ends_at']}")
    return 0


def _silences(args: argparse.Namespace) -> int:
    silences = _request("GET", "/api/v1/silences")
    if args.json:
        print(json.dumps(silences, indent=2))
        return 0
    if not silences:
        print("no silences")
    for s in silences:
        state = "active " if s["active"] else "expired"
        print(
            f"{s['id']}  {state}  until {s['ends_at']}  {' '.join(s['matchers'])}  "
            f"by {s['created_by']}  {s['comment']}"
        )
    return 0


def _expire(args: argparse.Namespace) -> int:
    expired = _request("DELETE", f"/api/v1/silences/{args.silence_id}")
    print(f"silence {expired['id']} ends {expired['ends_at']}")
    return 0


async def read_history(config: KafkaConfig, limit: int) -> list[NotificationAttempt]:
    """The latest ``limit`` attempts per partition of the audit topic, oldest first."""
    await wait_for_kafka(config, timeout_s=15)
    topic = config.topic(ALERTS_NOTIFICATIONS)
    # Without a group, a consumer given the topic is assigned all of its partitions.
    consumer = make_consumer(config, topic, group_id=None, read_committed=True)
    await consumer.start()
    attempts: list[NotificationAttempt] = []
    try:
        tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        if not tps:
            return []
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begin[tp], end[tp] - limit))
        pending = {tp for tp in tps if end[tp] > begin[tp]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1_000)
            for records in batches.values():
                for record in records:
                    try:
                        attempts.append(decode(NotificationAttempt, record.value or b""))
                    except SerdeError:
                        continue  # not an attempt record; the audit topic holds only these
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    attempts.sort(key=lambda a: a.at)
    return attempts[-limit:]


def _history(args: argparse.Namespace) -> int:
    stack = StackConfig.from_env(os.environ, cwd=Path.cwd())
    config = KafkaConfig(
        bootstrap_servers=stack.kafka_bootstrap,
        client_id="flywheel-cli",
        topic_prefix=stack.topic_prefix,
    )
    attempts = asyncio.run(read_history(config, max(1, args.limit)))
    if args.receiver:
        attempts = [a for a in attempts if a.receiver == args.receiver]
    if args.json:
        for attempt in attempts:
            print(attempt.model_dump_json())
        return 0
    if not attempts:
        print("no notification attempts recorded", file=sys.stderr)
    for a in attempts:
        code = a.status_code if a.status_code is not None else "-"
        print(
            f"{a.at:%Y-%m-%d %H:%M:%S}  {a.receiver:<16} {a.outcome.value:<10} "
            f"#{a.attempt:<2} {a.status.value:<8} {code!s:<4} {a.idempotency_key}  "
            f"{len(a.fingerprints)} alert(s)  {a.error or ''}"
        )
    return 0
