"""The optimizer against the real Kafka: live accuracy from joined labels, lag, alerts
that fire, survive a restart and resolve, and the HTTP surface."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition

from flywheel import serde
from flywheel.catalog import apply_tasks
from flywheel.events import (
    Alert,
    AlertState,
    FeedbackEvent,
    Heartbeat,
    PerformanceMetric,
    PredictionLog,
)
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.tasks import FeatureSpec, LabelSpec, Objective, TaskDefinition
from flywheel.topics import (
    ALERTS,
    FEEDBACK_EVENTS,
    HEARTBEATS,
    METRICS_PERFORMANCE,
    PREDICTIONS_LOG,
)
from optimizer.config import Settings
from optimizer.rules import RuleFile, ThresholdRule
from optimizer.service import OptimizerService

TASK = "shop.checkout-success"
RULES = RuleFile(
    rules=[
        ThresholdRule(name="QueueDeep", gauge="queue_depth", window="1m", op=">=", threshold=100),
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], *, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.3)


def settings_for(ns: KafkaConfig, port: int) -> Settings:
    return Settings(
        FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS=ns.bootstrap_servers,
        topic_prefix=ns.topic_prefix,
        optimizer_port=port,
        tick_s=0.5,
        lag_interval_s=1.0,
        heartbeat_interval_s=1.0,
        advice_min_samples=10,
        latency_budget_ms=10,
    )


class Running:
    def __init__(self, service: OptimizerService) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OptimizerService:
        await self.service.start()
        self.task = asyncio.create_task(self.service.run())
        return self.service

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def producer(kafka_namespace: KafkaConfig) -> AsyncIterator[Any]:
    p = make_producer(kafka_namespace)
    await p.start()
    yield p
    await p.stop()


async def send(producer: Any, ns: KafkaConfig, spec: Any, event: Any, key: str) -> None:
    await producer.send_and_wait(ns.topic(spec), serde.encode(event), key=key.encode())


async def read_all(ns: KafkaConfig, spec: Any, model: type[Any]) -> list[Any]:
    consumer = make_consumer(ns, ns.topic(spec), group_id=None)
    await consumer.start()
    try:
        out = []
        batches = await consumer.getmany(timeout_ms=1500)
        for records in batches.values():
            out += [serde.decode(model, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


async def test_live_accuracy_lag_metrics_and_http(
    kafka_namespace: KafkaConfig, producer: Any, group_id: str
) -> None:
    ns = kafka_namespace
    await apply_tasks(
        ns,
        [
            TaskDefinition(
                name=TASK,
                objective=Objective.BINARY,
                label=LabelSpec(type="bool"),
                features=(FeatureSpec(name="steps", type="int"),),
            )
        ],
    )
    # 40 predictions, 30 of them right once the labels arrive.
    for i in range(40):
        truth = i % 2 == 0
        score = (0.9 if truth else 0.1) if i < 30 else (0.1 if truth else 0.9)
        pid = f"pred-{i}"
        await send(
            producer,
            ns,
            PREDICTIONS_LOG,
            PredictionLog(
                prediction_id=pid,
                task=TASK,
                model_version=1,
                score=score,
                latency_ms=2.0 + i,
                cached=i % 5 == 0,
            ),
            TASK,
        )
        await send(
            producer,
            ns,
            FEEDBACK_EVENTS,
            FeedbackEvent(
                event_id=f"ev-{i}",
                task=TASK,
                features={"steps": i},
                label=truth,
                prediction_id=pid,
            ),
            TASK,
        )
    # A consumer group that has read nothing of feedback.events: lag = what is there.
    # It is named like the deployment's own groups (scoped by the prefix) and shows
    # up without the prefix, like the topic.
    lagging = make_consumer(ns, group_id=ns.scoped(group_id))
    await lagging.start()
    tps = [TopicPartition(ns.topic(FEEDBACK_EVENTS), p) for p in range(FEEDBACK_EVENTS.partitions)]
    lagging.assign(tps)
    await lagging.commit(dict.fromkeys(tps, 0))
    await lagging.stop()

    port = free_port()
    optimizer = OptimizerService(settings_for(ns, port), rules=RULES)
    async with Running(optimizer), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

        async def accuracy() -> Any:
            body = (await http.get("/v1/metrics", params={"task": TASK, "window": "1m"})).json()
            found = {m["name"]: m["value"] for m in body["metrics"] if not m["labels"]}
            return found if "live_accuracy" in found else None

        found = await eventually(accuracy)
        assert found["live_accuracy"] == pytest.approx(0.75)
        assert found["predictions"] == 40
        assert found["cache_hit_rate"] == pytest.approx(0.2)
        assert (await http.get("/healthz")).status_code == 200

        async def lag_exported() -> Any:
            text = (await http.get("/metrics")).text
            return text if f'group="{group_id}"' in text else None

        text = await eventually(lag_exported)
        lag = f'group="{group_id}",topic="feedback.events",window="1m"'
        assert f"flywheel_optimizer_consumer_lag_records{{{lag}}} 40.0" in text
        assert "flywheel_optimizer_invalid_records_total{" not in text
        assert f'flywheel_optimizer_live_accuracy_ratio{{task="{TASK}",window="5m"}} 0.75' in text
        recs = (await http.get("/v1/recommendations")).json()["recommendations"]
        latency = next(r for r in recs if r["kind"] == "model_over_latency_budget")
        assert latency["target"] == TASK
        assert latency["evidence"]["latency_p99_ms"] > 10
        assert latency["evidence"]["predictions"] == 40

    published = await read_all(ns, METRICS_PERFORMANCE, PerformanceMetric)
    assert any(m.name == "live_accuracy" and m.task == TASK for m in published)


async def test_alert_fires_survives_restart_and_resolves(
    kafka_namespace: KafkaConfig, producer: Any
) -> None:
    ns = kafka_namespace

    def beat(depth: float) -> Heartbeat:
        return Heartbeat(
            service="stream-ingest",
            instance="i1",
            rss_bytes=1,
            cpu_percent=1,
            gauges={"queue_depth": depth},
        )

    await send(producer, ns, HEARTBEATS, beat(500), "stream-ingest/i1")
    port = free_port()
    async with Running(OptimizerService(settings_for(ns, port), rules=RULES)) as service:
        await eventually(lambda: _async(bool(service.core.book.firing())))
    # The queue drains while the optimizer is down; the new one must still resolve.
    await send(producer, ns, HEARTBEATS, beat(0), "stream-ingest/i1")
    async with Running(OptimizerService(settings_for(ns, free_port()), rules=RULES)) as service:
        await eventually(lambda: _async(not service.core.book.firing()))

    alerts = [a for a in await read_all(ns, ALERTS, Alert) if a.name == "QueueDeep"]
    assert [a.state for a in alerts] == [AlertState.FIRING, AlertState.RESOLVED]
    assert alerts[0].fingerprint == alerts[1].fingerprint
    assert alerts[0].labels["service"] == "stream-ingest"


async def _async(value: bool) -> bool:
    return value
