"""Redis restarted under load, and schemathesis against the OpenAPI schema."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig, connect_redis, wait_for_redis
from flywheel.registry import ModelCache, RegistryView
from tests.integration.predictor.conftest import ModelPublisher, StartService, client_for, wait_for
from tests.unit.predictor.modelkit import ROW, train_version

TASK = "demo.task"
URL = f"/v1/tasks/{TASK}/predict"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A throw-away redis-server on its own port (never the shared one), no persistence."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


async def test_redis_restart_under_load_has_no_errors(
    private_redis: PrivateRedis,
    kafka_namespace: KafkaConfig,
    start_service: StartService,
    redis_prefix: str,
) -> None:
    config = RedisConfig(url=private_redis.url)
    await wait_for_redis(config, timeout_s=10)
    client = connect_redis(config)
    publisher = ModelPublisher(
        kafka_namespace, ModelCache(client, key_prefix=redis_prefix), RegistryView()
    )
    await publisher.publish(train_version(TASK, 1))
    service = await start_service(redis_url=private_redis.url)
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()

    async def load(worker: int) -> None:
        async with client_for(service) as http:
            i = 0
            while not stop.is_set():
                features = {**ROW, "steps": (worker * 7 + i) % 40}
                statuses[(await http.post(URL, json={"features": features})).status_code] += 1
                i += 1
                await asyncio.sleep(0.002)

    workers = [asyncio.create_task(load(n)) for n in range(3)]
    try:
        async with client_for(service) as http:
            await asyncio.sleep(0.5)
            private_redis.stop()
            await wait_for(lambda: _readiness(http, "degraded"))
            await asyncio.sleep(1.0)
            private_redis.start()
            await wait_for(lambda: _readiness(http, "ready"))
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 100
    # Redis came back empty; the champion was rebuilt there from the registry topic.
    restarted = connect_redis(config)
    try:
        await wait_for(lambda: _has_champion(restarted, redis_prefix))
    finally:
        await restarted.aclose()
        await client.aclose()


async def _readiness(http: object, status: str) -> bool:
    response = await http.get("/readyz")  # type: ignore[attr-defined]
    return bool(response.json()["status"] == status)


async def _has_champion(client: object, prefix: str) -> bool:
    key = ModelCache(client, key_prefix=prefix).champion_key(TASK)
    return bool(await client.get(key) == b"1")  # type: ignore[attr-defined]


@pytest.fixture
async def served_url(publisher: ModelPublisher, start_service: StartService) -> AsyncIterator[str]:
    await publisher.publish(train_version(TASK, 1))
    service = await start_service()
    yield f"http://127.0.0.1:{service.port}"


async def test_schemathesis_finds_no_server_errors(served_url: str, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("schemathesis")
    process = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{served_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "40",
        "--seed",
        "1",
        "--request-timeout",
        "5",
        "--suppress-health-check",
        "all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    # The summary line reads "N generated, N passed" and names no failure.
    assert " passed" in text
    assert "failed" not in text.lower(), text[-4000:]
