"""`flywheel tasks ...` against the real broker, in a private topic namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flywheel.catalog import TaskCatalog
from flywheel.kafka import KafkaConfig

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples/tasks/daisy-chain.task-success.yaml"


def _flywheel(kafka: KafkaConfig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FLYWHEEL_TOPIC_PREFIX": kafka.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "flywheel_cli", "tasks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_apply_list_show_delete(kafka_namespace: KafkaConfig, tmp_path: Path) -> None:
    applied = _flywheel(kafka_namespace, "apply", str(EXAMPLE))
    assert applied.returncode == 0, applied.stderr
    assert "applied: daisy-chain.task-success" in applied.stdout

    listed = _flywheel(kafka_namespace, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (task,) = json.loads(listed.stdout)
    assert task["name"] == "daisy-chain.task-success"
    assert [f["name"] for f in task["features"]] == ["steps", "retries", "agent"]

    # Services see exactly what the CLI stored.
    catalog = TaskCatalog(kafka_namespace)
    await catalog.start(follow=False)
    await catalog.stop()
    stored = catalog.get("daisy-chain.task-success")
    assert stored is not None
    assert stored.flush.max_events == 500

    shown = _flywheel(kafka_namespace, "show", "daisy-chain.task-success")
    assert json.loads(shown.stdout)["objective"] == "binary"

    deleted = _flywheel(kafka_namespace, "delete", "daisy-chain.task-success")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(_flywheel(kafka_namespace, "list", "--json").stdout) == []
    missing = _flywheel(kafka_namespace, "show", "daisy-chain.task-success")
    assert missing.returncode == 1
    assert "no task named" in missing.stderr


def test_invalid_file_is_refused_naming_the_field(
    kafka_namespace: KafkaConfig, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("max_events: 500", "max_events: -1"))
    result = _flywheel(kafka_namespace, "apply", str(bad))
    assert result.returncode == 2
    assert "flush.max_events" in result.stderr
    assert json.loads(_flywheel(kafka_namespace, "list", "--json").stdout) == []
