"""The local stack as an operator sees it: ``flywheel stack status --json``, and a full
``up`` / ``down`` cycle of a private stack on free ports beside the shared one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from flywheel_cli.components import ServiceSpec
from flywheel_cli.config import StackConfig
from flywheel_cli.local_stack import LocalStack, StackError
from flywheel_cli.processes import is_running, port_open
from tests.integration.conftest import StackEndpoints

# Variables that would point a private stack at the shared one.
_STACK_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "FLYWHEEL_TOPIC_PREFIX")


def _flywheel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_status_json_reports_kafka_and_redis_healthy_with_pids_and_ports(
    stack: StackEndpoints,
) -> None:
    done = _flywheel("stack", "status", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["healthy"] is True
    by_name = {component["name"]: component for component in report["components"]}
    for name in ("kafka", "redis"):
        component = by_name[name]
        assert component["health"] == "healthy", component
        assert isinstance(component["port"], int) and component["port"] > 0
        on_this_machine = "127.0.0.1:" in component["endpoint"]
        if component["managed"] or on_this_machine:
            assert isinstance(component["pid"], int) and component["pid"] > 0, component
    assert by_name["kafka"]["endpoint"] == stack.kafka.bootstrap_servers


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


FAKE_SERVICE = """
import http.server, os, signal, sys

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass

port = int(os.environ["FLYWHEEL_FAKE_PORT"])
server = http.server.HTTPServer(("127.0.0.1", port), Health)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("kafka at", os.environ["FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS"], flush=True)
server.serve_forever()
"""


@pytest.fixture
def private_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a second, private stack on free ports with its own state folder."""
    kafka, controller, redis = _free_ports(3)
    env = {k: v for k, v in os.environ.items() if k not in _STACK_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith("FLYWHEEL_")}
    env |= {
        "FLYWHEEL_STATE_DIR": str(tmp_path / "state"),
        "FLYWHEEL_KAFKA_PORT": str(kafka),
        "FLYWHEEL_KAFKA_CONTROLLER_PORT": str(controller),
        "FLYWHEEL_REDIS_PORT": str(redis),
    }
    return env


@pytest.fixture
def fake_service(tmp_path: Path) -> tuple[ServiceSpec, str]:
    """A service package with a __main__ that answers /healthz; returns (spec, PYTHONPATH)."""
    module = f"fw_fake_service_{uuid4().hex[:8]}"
    package = tmp_path / "pkgs" / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_SERVICE)
    (port,) = _free_ports(1)
    return ServiceSpec("fake", module, port, "FLYWHEEL_FAKE_PORT"), str(tmp_path / "pkgs")


@pytest.fixture
def private_stack(
    private_env: dict[str, str], fake_service: tuple[ServiceSpec, str], tmp_path: Path
) -> Iterator[LocalStack]:
    spec, pythonpath = fake_service
    env = private_env | {"PYTHONPATH": pythonpath}
    config = StackConfig.from_env(env, cwd=tmp_path)
    local = LocalStack(config, env=env, python=sys.executable, services=[spec])
    try:
        yield local
    finally:
        local.down()  # whatever a failed assertion left running


def test_up_status_down_of_a_private_stack(
    private_stack: LocalStack, private_env: dict[str, str]
) -> None:
    config = private_stack.config
    records = {record.name: record for record in private_stack.up(timeout_s=90)}
    assert set(records) == {"kafka", "redis", "fake"}
    assert all(record.managed and record.pid for record in records.values())
    assert "kafka at 127.0.0.1:" in Path(records["fake"].log or "").read_text()

    # The CLI sees the same stack through the same state folder.
    done = _flywheel("stack", "status", "--json", env=private_env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = {c["name"]: c for c in json.loads(done.stdout)["components"]}
    assert report["kafka"]["pid"] == records["kafka"].pid
    assert report["kafka"]["port"] == config.kafka_port
    assert report["redis"]["port"] == config.redis_port
    assert report["fake"]["health"] == "healthy"
    assert (config.pids_dir / "kafka.pid").read_text().strip() == str(records["kafka"].pid)

    # Idempotent: a second up starts nothing new.
    again = {record.name: record.pid for record in private_stack.up(timeout_s=30)}
    assert again == {name: record.pid for name, record in records.items()}

    # A component that dies is reported, and the next up replaces only it.
    os.kill(records["redis"].pid or 0, signal.SIGKILL)
    assert _wait(lambda: not is_running(records["redis"].pid, records["redis"].start_ticks))
    assert _flywheel("stack", "status", "--json", env=private_env).returncode == 1
    healed = {record.name: record.pid for record in private_stack.up(timeout_s=30)}
    assert healed["kafka"] == records["kafka"].pid
    assert healed["redis"] != records["redis"].pid

    stopped = {record.name: result for record, result in private_stack.down()}
    assert {name: result and result.outcome for name, result in stopped.items()} == {
        "fake": "terminated",
        "redis": "terminated",
        "kafka": "terminated",
    }
    assert not port_open("127.0.0.1", config.kafka_port)
    assert not port_open("127.0.0.1", config.redis_port)
    assert not config.stack_file.exists()
    assert not list(config.pids_dir.glob("*.pid"))


def test_up_uses_but_never_stops_a_stack_it_did_not_start(
    stack: StackEndpoints, tmp_path: Path, private_env: dict[str, str]
) -> None:
    host, _, port = stack.kafka.bootstrap_servers.partition(":")
    redis_port = stack.redis.url.rsplit(":", 1)[1].split("/")[0]
    if host != "127.0.0.1" or not port.isdigit():
        pytest.skip("the session stack is not on this machine's loopback")
    env = private_env | {"FLYWHEEL_KAFKA_PORT": port, "FLYWHEEL_REDIS_PORT": redis_port}
    adopting = LocalStack(
        StackConfig.from_env(env, cwd=tmp_path), env=env, python=sys.executable, services=[]
    )
    records = {record.name: record for record in adopting.up(timeout_s=30)}
    assert not records["kafka"].managed and not records["redis"].managed
    assert all(result is None for _, result in adopting.down())
    assert port_open("127.0.0.1", int(port)), "the shared broker must still be up"


def test_a_service_that_cannot_start_fails_up_quickly_with_its_log(
    stack: StackEndpoints, tmp_path: Path, private_env: dict[str, str]
) -> None:
    # Kafka and Redis are the session's (external here), so only the service starts.
    env = private_env | {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "REDIS_URL": stack.redis.url,
    }
    module = "fw_no_such_module_" + uuid4().hex[:6]
    broken = ServiceSpec("broken", module, _free_ports(1)[0], "FLYWHEEL_BROKEN_PORT")
    local = LocalStack(
        StackConfig.from_env(env, cwd=tmp_path), env=env, python=sys.executable, services=[broken]
    )
    started = time.monotonic()
    try:
        # The module is missing; up must notice the process exit, not wait out 90 s.
        with pytest.raises(StackError, match=r"broken exited during start-up(.|\n)*No module"):
            local.up(timeout_s=90)
    finally:
        local.down()
    assert time.monotonic() - started < 30


def _wait(condition: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False
