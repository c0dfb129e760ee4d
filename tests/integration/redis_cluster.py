"""A real three-primary Redis Cluster on loopback, for the cluster tests.

Three ``redis-server --cluster-enabled yes`` processes on free ports, joined by
``redis-cli --cluster create`` (no replicas: the tests are about slot routing, not
failover), torn down by pid. Needs ``redis-server`` and ``redis-cli`` on PATH.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flywheel.redis import RedisConfig
from flywheel_cli.processes import port_open

__all__ = ["local_redis_cluster"]

HOST = "127.0.0.1"
PRIMARIES = 3
READY_TIMEOUT_S = 20.0


def _free_port(taken: list[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too: at most 55535."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(30000, 55535)
        if port not in taken and not port_open(HOST, port) and not port_open(HOST, port + 10000):
            return port
    raise RuntimeError("no free port pair for the local Redis Cluster")


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=15,
    ).stdout


def _wait(condition: str, check: object) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except subprocess.SubprocessError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"local Redis Cluster: {condition} not reached in {READY_TIMEOUT_S:.0f}s")


@contextmanager
def local_redis_cluster() -> Iterator[RedisConfig]:
    """Start the cluster; yield a cluster :class:`RedisConfig` naming its first node."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are needed for the Redis Cluster tests")
    workdir = Path(tempfile.mkdtemp(prefix="flywheel-redis-cluster-"))
    ports: list[int] = []
    for _ in range(PRIMARIES):
        ports.append(_free_port(ports))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            servers.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port", str(port),
                        "--bind", "127.0.0.1",
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", str(workdir),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        for port in ports:
            _wait(f"port {port} answering", lambda port=port: "PONG" in _cli(port, "ping"))
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in ports:
            _wait(
                f"cluster_state:ok on {port}",
                lambda port=port: "cluster_state:ok" in _cli(port, "cluster", "info"),
            )
        yield RedisConfig(url=f"redis://127.0.0.1:{ports[0]}/0", cluster=True)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
