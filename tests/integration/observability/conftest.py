"""A live loop for the observability test: every service that exists, as a real process
in a private topic namespace, the real Prometheus binary scraping them every second,
and feedback and predictions flowing the whole time.

Module-scoped and synchronous (the async parts run on private loops in threads), so
the loop starts once and every PromQL expression is checked against the same stack.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from flywheel import serde
from flywheel.catalog import apply_tasks
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, ensure_topics, make_producer
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import (
    ModelCache,
    RegistryView,
    announcement,
    champion_change,
    publish_registry_records,
)
from flywheel.tasks import LabelSpec, LabelType, Objective, TaskDefinition
from flywheel.topics import ALL_TOPICS, FEEDBACK_EVENTS
from tests.integration.conftest import StackEndpoints

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TASK = "obs.checkout-success"
WARM_UP_S = 150.0

# import package -> (job name in prometheus.yml, env var of its port)
SERVICES: dict[str, tuple[str, str]] = {
    "stream_ingest": ("flywheel-ingest", "FLYWHEEL_INGEST_PORT"),
    "trainer": ("flywheel-trainer", "FLYWHEEL_TRAINER_PORT"),
    "predictor": ("flywheel-predictor", "FLYWHEEL_PREDICTOR_PORT"),
    "optimizer": ("flywheel-optimizer", "FLYWHEEL_OPTIMIZER_PORT"),
    "alerter": ("flywheel-alerter", "FLYWHEEL_ALERTER_HTTP_PORT"),
}

# A rule that fires as soon as predictions flow, so the alert panels have something to show.
OPTIMIZER_RULES = {
    "rules": [
        {
            "name": "PredictionsFlowing",
            "metric": "predictions",
            "window": "1m",
            "op": ">",
            "threshold": 0,
            "severity": "info",
        }
    ]
}


def runnable(package: str) -> bool:
    """A service exists once ``python -m <package>`` can start it."""
    try:
        return importlib.util.find_spec(f"{package}.__main__") is not None
    except ModuleNotFoundError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_async(coro: Any) -> Any:
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@dataclass
class LiveLoop:
    prometheus_url: str
    running: set[str]
    tmp: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Every expression may wait for data until this (the loop needs a model and a
    # few evaluation rounds first); later expressions rarely wait at all.
    ready_by: float = 0.0
    stop_traffic: threading.Event = field(default_factory=threading.Event)

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        body: dict[str, Any] = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body.get('error')}")
        return body

    def logs(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _prometheus_config(tmp: Path, ports: dict[str, int]) -> Path:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="900ms", evaluation_interval="1s")
    jobs = {job: pkg for pkg, (job, _) in SERVICES.items()}
    for scrape in config["scrape_configs"]:
        port = ports.get(jobs[scrape["job_name"]], free_port())  # absent service: a dead port
        scrape["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    shutil.copytree(REPO / "deploy/prometheus/rules", tmp / "rules")
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(name: str, args: list[str], env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    # The child keeps its own descriptor; ours closes at once.
    with (tmp / f"{name}.log").open("wb") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def _prepare(kafka: KafkaConfig) -> None:
    await ensure_topics(kafka, ALL_TOPICS)
    from tests.unit.predictor.modelkit import SCHEMA

    task = TaskDefinition(
        name=TASK,
        objective=Objective.BINARY,
        label=LabelSpec(type=LabelType.BOOL),
        features=SCHEMA,
        flush={"max_events": 50, "max_age_s": 1.0},
        training={"min_events_to_train": 50},
    )
    await apply_tasks(kafka, [task])


async def _publish_model(kafka: KafkaConfig, redis: RedisConfig, redis_prefix: str) -> None:
    """Stand in for the trainer (when it cannot run yet): publish a real model the
    way it does, so the predictor has something to serve."""
    from tests.unit.predictor.modelkit import train_version

    version = train_version(TASK, 1)
    view = RegistryView()
    change = champion_change(view, TASK, 1, kind="promotion", reason="observability test")
    await publish_registry_records(kafka, [version, change])
    client = connect_redis(redis)
    try:
        await ModelCache(client, key_prefix=redis_prefix).set_champion(version)
    finally:
        await client.aclose()
    await publish_registry_records(kafka, [], announce=announcement(version))


async def _traffic(kafka: KafkaConfig, predictor_url: str | None, stop: threading.Event) -> None:
    """Predictions with delayed labels, feedback for training, and one bad event."""
    from tests.unit.predictor.modelkit import AGENTS

    rng = random.Random(1)
    producer = make_producer(kafka)
    await producer.start()
    topic = kafka.topic(FEEDBACK_EVENTS)
    # Refused by ingest (label must be a bool): the dead-letter panels need one.
    await producer.send_and_wait(
        topic,
        b'{"event_id": "bad-1", "task": "' + TASK.encode() + b'", "features": {}, '
        b'"label": "maybe"}',
        key=TASK.encode(),
    )
    sent = 0
    async with httpx.AsyncClient(base_url=predictor_url or "http://127.0.0.1:9") as http:
        while not stop.is_set():
            row = {
                "steps": rng.randrange(40),
                "retries": round(rng.random() * 3, 1),
                "agent": rng.choice(AGENTS),
                "cached": None,
            }
            if sent % 4 == 0:
                row = {"steps": 1, "retries": 0.0, "agent": "coder", "cached": None}  # cache hits
            label = row["steps"] > 20
            prediction_id = None
            if predictor_url is not None:
                try:
                    answer = await http.post(f"/v1/tasks/{TASK}/predict", json={"features": row})
                    if answer.status_code == 200:
                        prediction_id = answer.json()["prediction_id"]
                except httpx.HTTPError:
                    pass  # not ready yet; feedback still flows
            event = FeedbackEvent(
                event_id=f"ev-{uuid4().hex}",
                task=TASK,
                features=row,
                label=label,
                prediction_id=prediction_id,
            )
            await producer.send(topic, serde.encode(event), key=TASK.encode())
            sent += 1
            await asyncio.sleep(0.02)
    await producer.stop()


async def _delete_topics(kafka: KafkaConfig) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([kafka.topic(spec) for spec in ALL_TOPICS])
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def live_loop(
    stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveLoop]:
    if not Path(PROMETHEUS).exists():
        pytest.fail("the prometheus binary is missing: apt-get install prometheus", pytrace=False)
    tmp = tmp_path_factory.mktemp("observability")
    run = uuid4().hex[:8]
    kafka = KafkaConfig(
        bootstrap_servers=stack.kafka.bootstrap_servers,
        client_id="obs-tests",
        topic_prefix=f"obs{run}.",
    )
    redis_prefix = f"obs:{run}:"
    run_async(_prepare(kafka))
    running = {pkg for pkg in SERVICES if runnable(pkg)}
    ports = {pkg: free_port() for pkg in running}
    (tmp / "optimizer-rules.yml").write_text(yaml.safe_dump(OPTIMIZER_RULES))
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")},
        "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FLYWHEEL_REDIS_URL": stack.redis.url,
        "FLYWHEEL_TOPIC_PREFIX": kafka.topic_prefix,
        "FLYWHEEL_LOG_FORMAT": "text",
        "FLYWHEEL_INSTANCE_ID": f"obs-{run}",
        # Every service's heartbeat, often enough for the 1m windows to fill quickly.
        "FLYWHEEL_HEARTBEAT_INTERVAL_S": "1",
        "PYTHONPATH": str(REPO),
    }
    extra: dict[str, dict[str, str]] = {
        "stream_ingest": {
            "FLYWHEEL_INGEST_GROUP_ID": f"obs{run}.ingest",
            "FLYWHEEL_INGEST_TRANSACTIONAL_ID": f"obs{run}.ingest",
        },
        "trainer": {
            "FLYWHEEL_TRAINER_GROUP_ID": f"obs{run}.trainer",
            "FLYWHEEL_TRAINER_TRANSACTIONAL_ID": f"obs{run}.trainer",
        },
        "predictor": {
            "FLYWHEEL_REDIS_KEY_PREFIX": redis_prefix,
            # The predictor skips its cache for models cheaper to score than a Redis
            # round trip, a cost it measures at warm-up; whether the cache panel had
            # data then depended on machine load. Caching every row makes it certain.
            "FLYWHEEL_PREDICTOR_CACHE_MIN_ROW_COST_US": "0",
        },
        "optimizer": {
            "FLYWHEEL_TICK_S": "1",
            "FLYWHEEL_LAG_INTERVAL_S": "2",
            "FLYWHEEL_OPTIMIZER_RULES_FILE": str(tmp / "optimizer-rules.yml"),
        },
        "alerter": {"FLYWHEEL_ALERTER_CONSUMER_GROUP": f"obs{run}.alerter"},
    }
    loop = LiveLoop(prometheus_url="", running=running, tmp=tmp)
    traffic: threading.Thread | None = None
    try:
        for pkg in sorted(running):
            env = {**base_env, SERVICES[pkg][1]: str(ports[pkg]), **extra[pkg]}
            loop.processes[pkg] = _start(pkg, [sys.executable, "-m", pkg], env, tmp)
        if "trainer" not in running:
            run_async(_publish_model(kafka, stack.redis, redis_prefix))
        prom_port = free_port()
        loop.prometheus_url = f"http://127.0.0.1:{prom_port}"
        loop.processes["prometheus"] = _start(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={_prometheus_config(tmp, ports)}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            dict(os.environ),
            tmp,
        )
        _wait_until_prometheus_is_ready(loop)
        predictor_url = f"http://127.0.0.1:{ports['predictor']}" if "predictor" in running else None
        traffic = threading.Thread(
            target=run_async, args=(_traffic(kafka, predictor_url, loop.stop_traffic),)
        )
        traffic.start()
        loop.ready_by = time.monotonic() + WARM_UP_S
        yield loop
    finally:
        loop.stop_traffic.set()
        if traffic is not None:
            traffic.join(timeout=30)
        for process in loop.processes.values():
            _stop(process)
        run_async(_delete_topics(kafka))


def _wait_until_prometheus_is_ready(loop: LiveLoop, timeout_s: float = 60.0) -> None:
    # Prometheus answers 503 on its API until the TSDB has opened; on a loaded
    # machine that takes seconds, and a query then is not a missing series.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{loop.prometheus_url}/-/ready", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"prometheus not ready in {timeout_s:.0f}s:\n{loop.logs('prometheus')}")


def wait_for_data(loop: LiveLoop, expr: str, *, deadline: float) -> list[Any]:
    """The expression's result once it is non-empty, or [] at the deadline."""
    while True:
        result: list[Any] = loop.query(expr)["data"]["result"]
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1.0)
