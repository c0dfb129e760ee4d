"""What the alerter's durable exactly-once delivery costs, next to a naive forwarder.

Both paths read the same kind of alerts from Kafka and POST one webhook per alert to
the same local receiver (127.0.0.1):

* ``alerter``   - the real service in-process (transactional accept, stored intent,
  transactional settle with audit record, HMAC-signed body), route ``group_by: [...]``,
  ``group_wait: 0s``, no rate limit to speak of;
* ``reference`` - an at-least-once forwarder: consume, POST, commit offsets per batch
  (no audit, no intents, no dedup: what a restart would repeat or lose).

Each run uses a fresh topic namespace. Reported: notifications/s and the latency from
publishing an alert to the receiver seeing it (p50, p95), median of the repeated runs.

    .venv/bin/python bench/alerter_delivery.py [--alerts 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import orjson
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient

from alerter.config import Settings
from alerter.routing import parse_config
from alerter.service import AlerterService
from flywheel.events import Alert, AlertSeverity, AlertState
from flywheel.kafka import KafkaConfig, ensure_topics, make_consumer, make_producer
from flywheel.serde import encode
from flywheel.topics import ALERTS, ALERTS_DLQ, ALERTS_NOTIFICATIONS, ALERTS_STATE

TOPICS = [ALERTS, ALERTS_NOTIFICATIONS, ALERTS_DLQ, ALERTS_STATE]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
RESULTS = Path(__file__).parent / "results" / "alerter_delivery.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver:
    """Records when each alert (by fingerprint) first arrives."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        now = time.perf_counter()
        self.requests += 1
        payload = orjson.loads(body)
        items = payload.get("alerts") or [payload]
        for item in items:
            self.first_seen.setdefault(item["fingerprint"], now)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def alerts(n: int) -> list[Alert]:
    start = datetime.now(UTC) - timedelta(minutes=1)
    return [
        Alert.build(
            "BenchAlert",
            state=AlertState.FIRING,
            severity=AlertSeverity.WARNING,
            labels={"task": f"task{i}"},
            starts_at=start,
        )
        for i in range(n)
    ]


async def namespace() -> KafkaConfig:
    config = KafkaConfig(
        bootstrap_servers=BOOTSTRAP, client_id="bench", topic_prefix=f"b{uuid4().hex[:8]}."
    )
    await ensure_topics(config, TOPICS)
    return config


async def drop(config: KafkaConfig) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([config.topic(t) for t in TOPICS])
    finally:
        await admin.close()


async def publish(config: KafkaConfig, batch: list[Alert]) -> dict[str, float]:
    producer = make_producer(config)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        for alert in batch:
            sent[alert.fingerprint] = time.perf_counter()
            await producer.send(config.topic(ALERTS), encode(alert), key=alert.fingerprint.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def wait_all(receiver: Receiver, fingerprints: set[str], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not fingerprints <= set(receiver.first_seen):
        if time.perf_counter() > deadline:
            missing = len(fingerprints - set(receiver.first_seen))
            raise RuntimeError(f"{missing} alerts not delivered within {timeout_s}s")
        await asyncio.sleep(0.02)


def summarise(sent: dict[str, float], receiver: Receiver) -> dict[str, float]:
    latencies = sorted(receiver.first_seen[fp] - t for fp, t in sent.items())
    elapsed = max(receiver.first_seen[fp] for fp in sent) - min(sent.values())
    return {
        "notifications_per_s": len(sent) / elapsed,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p95_ms": 1000 * latencies[int(len(latencies) * 0.95) - 1],
    }


async def run_alerter(n: int, url: str, receiver: Receiver) -> dict[str, float]:
    config = await namespace()
    settings = Settings(
        kafka_bootstrap_servers=BOOTSTRAP,
        topic_prefix=config.topic_prefix,
        alerter_http_port=free_port(),
        alerter_consumer_group=f"bench-{uuid4().hex[:8]}",
        log_level="WARNING",
    )
    alerter_config = parse_config(
        {
            "route": {"receiver": "hook", "group_by": ["..."], "group_wait": "0s"},
            "receivers": [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": url,
                    "hmac_secret": "bench-secret-0123456789",
                    "rate_per_s": 1000,
                }
            ],
            "allowed_target_networks": ["127.0.0.1/32"],
        }
    )
    service = AlerterService(settings, alerter_config)
    await service.start()
    runner = asyncio.create_task(service.run())
    try:
        batch = alerts(n)
        receiver.first_seen.clear()
        sent = await publish(config, batch)
        await wait_all(receiver, set(sent), timeout_s=120)
        return summarise(sent, receiver)
    finally:
        await service.stop()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await drop(config)


async def run_reference(n: int, url: str, receiver: Receiver) -> dict[str, float]:
    config = await namespace()
    consumer = make_consumer(config, config.topic(ALERTS), group_id=f"ref-{uuid4().hex[:8]}")
    await consumer.start()
    stop = asyncio.Event()

    async def forward() -> None:
        async with httpx.AsyncClient() as client:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        alert = orjson.loads(record.value or b"{}")
                        await client.post(url, content=orjson.dumps({"alerts": [alert]}))
                if batches:
                    await consumer.commit()

    task = asyncio.create_task(forward())
    try:
        receiver.first_seen.clear()
        sent = await publish(config, alerts(n))
        await wait_all(receiver, set(sent), timeout_s=120)
        return summarise(sent, receiver)
    finally:
        stop.set()
        await task
        await consumer.stop()
        await drop(config)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    receiver = Receiver()
    port = free_port()
    server = _Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{port}/hook"
    alerter_runs, reference_runs = [], []
    try:
        for _ in range(args.runs):  # interleaved, so drift in the machine hits both
            alerter_runs.append(await run_alerter(args.alerts, url, receiver))
            reference_runs.append(await run_reference(args.alerts, url, receiver))
    finally:
        server.should_exit = True
        await serving
    result = {
        "benchmark": "alerter_delivery",
        "alerts_per_run": args.alerts,
        "runs": args.runs,
        "alerter": median(alerter_runs),
        "reference_at_least_once_forwarder": median(reference_runs),
        "raw": {"alerter": alerter_runs, "reference": reference_runs},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "at": datetime.now(UTC).isoformat(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    a, r = result["alerter"], result["reference_at_least_once_forwarder"]
    print(f"alerter_delivery ({args.alerts} alerts x {args.runs} runs, median):")
    for key in a:
        print(f"  {key:<22} alerter {a[key]:>9.2f}   reference {r[key]:>9.2f}")


if __name__ == "__main__":
    asyncio.run(main())
