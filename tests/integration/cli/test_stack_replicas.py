"""Replicas in a private stack: two processes of one service on their own ports, one
SIGKILLed and restarted by name, both stopped by ``down``. Kafka and Redis are the
session's (used, never stopped), so only the service processes are started here."""

from __future__ import annotations

import sys
from pathlib import Path

from flywheel_cli.components import ServiceSpec
from flywheel_cli.config import StackConfig
from flywheel_cli.local_stack import LocalStack
from flywheel_cli.processes import is_running, port_open
from tests.integration.conftest import StackEndpoints
from tests.integration.test_stack import FAKE_SERVICE, _free_ports

FAKE_WITH_INSTANCE = FAKE_SERVICE.replace(
    'print("kafka at"',
    'print("instance", os.environ.get("FLYWHEEL_INSTANCE_ID"), flush=True)\nprint("kafka at"',
)


def test_two_replicas_restart_one_by_name_and_down_stops_both(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    package = tmp_path / "pkgs" / "fw_fake_replicated"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_WITH_INSTANCE)
    port = next(p for p in _free_ports(8) if not port_open("127.0.0.1", p + 100))
    spec = ServiceSpec("fake", "fw_fake_replicated", port, "FLYWHEEL_FAKE_PORT", scalable=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(tmp_path / "pkgs"),
        "FLYWHEEL_STATE_DIR": str(tmp_path / "state"),
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "REDIS_URL": stack.redis.url,
    }
    config = StackConfig.from_env(env, cwd=tmp_path).with_replicas({"fake": 2})
    local = LocalStack(config, env=env, python=sys.executable, services=[spec])
    try:
        records = {r.name: r for r in local.up(timeout_s=60) if r.kind == "service"}
        assert {name: r.port for name, r in records.items()} == {
            "fake": port,
            "fake-2": port + 100,
        }
        first_log = Path(records["fake"].log or "").read_text()
        second_log = Path(records["fake-2"].log or "").read_text()
        assert "instance None" in first_log  # replica 1 is the service as it always was
        assert "instance fake-2" in second_log
        statuses = {s.record.name: s for s in local.status()}
        assert statuses["fake-2"].health.healthy and statuses["fake-2"].pid == records["fake-2"].pid

        stopped, restarted = local.restart("fake-2", kill=True)
        assert stopped.outcome == "killed"
        assert not is_running(records["fake-2"].pid, records["fake-2"].start_ticks)
        assert restarted.pid != records["fake-2"].pid and restarted.port == port + 100
        assert is_running(records["fake"].pid, records["fake"].start_ticks), "replica 1 untouched"
        assert {s.record.name: s.pid for s in local.status()}["fake-2"] == restarted.pid
    finally:
        results = {record.name: outcome for record, outcome in local.down()}
    assert results["fake"] is not None and results["fake"].outcome == "terminated"
    assert results["fake-2"] is not None and results["fake-2"].outcome == "terminated"
    assert results["kafka"] is None and results["redis"] is None  # the session's: left alone
    assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", port + 100)
