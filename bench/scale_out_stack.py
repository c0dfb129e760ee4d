"""A private local stack with replicas, for the scale-out audit (bench/scale_out_audit.py).

Its own Kafka, Redis and state folder on free ports, so a stack already running on
this machine is never touched; only the three services that scale out run (two
processes each by default). Everything is started and stopped through
:class:`flywheel_cli.local_stack.LocalStack`, the code behind ``flywheel stack up |
restart | down``, so the audit exercises what an operator runs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from flywheel.kafka import KafkaConfig
from flywheel_cli.components import service_by_name
from flywheel_cli.config import StackConfig
from flywheel_cli.local_stack import LocalStack
from flywheel_cli.processes import Stopped

REPO = Path(__file__).resolve().parents[1]
SCALED = ("stream-ingest", "trainer", "predictor")
# The broker shares two cores with six service processes and the load generator.
KAFKA_HEAP_MB = 256


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, replicas: int) -> list[int]:
    """``count`` free ports whose replica ports (+100, +200, ...) are free as well."""
    spec = service_by_name("predictor")  # every service offsets its replicas alike
    ports: list[int] = []
    claimed: set[int] = set()
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        wanted = [spec.replica_port(port, index) for index in range(1, replicas + 1)]
        if all(p <= 65_535 and p not in claimed and _bindable(p) for p in wanted):
            ports.append(port)
            claimed.update(wanted)
    return ports


def private_env(state_dir: Path, *, replicas: int) -> dict[str, str]:
    """The caller's environment minus anything pointing at another stack, on free ports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FLYWHEEL_") and key not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")
    }
    kafka, controller, redis, *service_ports = free_ports(3 + len(SCALED), replicas=replicas)
    env |= {
        "FLYWHEEL_STATE_DIR": str(state_dir),
        "FLYWHEEL_KAFKA_PORT": str(kafka),
        "FLYWHEEL_KAFKA_CONTROLLER_PORT": str(controller),
        "FLYWHEEL_REDIS_PORT": str(redis),
        "FLYWHEEL_KAFKA_HEAP_MB": str(KAFKA_HEAP_MB),
    }
    for name, port in zip(SCALED, service_ports, strict=True):
        env[service_by_name(name).port_env] = str(port)
    return env


@dataclass(frozen=True, slots=True)
class Restart:
    name: str
    stopped: Stopped
    killed_at: float  # time.monotonic()
    healthy_at: float


class PrivateStack:
    """``async with PrivateStack(root) as stack:`` up on entry, down (by pid) on exit."""

    def __init__(
        self, root: Path, *, replicas: int = 2, echo: Callable[[str], None] = lambda _: None
    ) -> None:
        self.replicas = replicas
        self.env = private_env(root / "state", replicas=replicas)
        config = StackConfig.from_env(self.env, cwd=REPO)
        self.stack = LocalStack(
            config.with_replicas(dict.fromkeys(SCALED, replicas)),
            env=self.env,
            python=sys.executable,
            echo=echo,
            services=[service_by_name(name) for name in SCALED],
        )

    @property
    def config(self) -> StackConfig:
        return self.stack.config

    def kafka(self, client_id: str = "scale-out-audit") -> KafkaConfig:
        return KafkaConfig(bootstrap_servers=self.config.kafka_bootstrap, client_id=client_id)

    def replica_names(self, service: str) -> list[str]:
        spec = service_by_name(service)
        return [spec.replica_name(index) for index in range(1, self.replicas + 1)]

    def predictor_endpoints(self) -> list[str]:
        spec = service_by_name("predictor")
        port = self.config.service_ports[spec.name]
        return [
            f"http://127.0.0.1:{spec.replica_port(port, index)}"
            for index in range(1, self.replicas + 1)
        ]

    def log(self, name: str) -> Path:
        return self.config.logs_dir / f"{name}.log"

    def restart(self, name: str, *, pause_s: float, timeout_s: float = 90.0) -> Restart:
        """SIGKILL one replica, keep it down ``pause_s``, start it, wait until healthy."""
        killed_at = time.monotonic()
        stopped, _ = self.stack.restart(name, kill=True, pause_s=pause_s, timeout_s=timeout_s)
        return Restart(name, stopped, killed_at, time.monotonic())

    # LocalStack probes Kafka with asyncio.run, so up/down run on a worker thread.
    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(self.stack.up, timeout_s=180.0)
        except BaseException:
            await asyncio.to_thread(self.stack.down)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stack.down)
