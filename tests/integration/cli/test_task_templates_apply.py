"""Every template in examples/tasks is applied by ``flywheel tasks apply`` to a real
broker, in a private topic namespace, and the catalog the services read holds exactly
the definition the file declares."""

from __future__ import annotations

import asyncio

import pytest

from flywheel.catalog import TaskCatalog
from flywheel.kafka import KafkaConfig
from flywheel.tasks import load_task_file
from flywheel_cli.__main__ import main
from tests.unit.cli.integrate_helpers import TEMPLATES

pytestmark = pytest.mark.integration


async def _catalog(kafka: KafkaConfig) -> TaskCatalog:
    catalog = TaskCatalog(kafka)
    await catalog.start(follow=False)
    await catalog.stop()
    return catalog


async def test_every_template_applies_as_declared(
    kafka_namespace: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_namespace.bootstrap_servers)
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", kafka_namespace.topic_prefix)
    files = sorted(TEMPLATES.glob("*.yaml"))
    declared = {}
    for path in files:
        # The CLI runs its own event loop; run it off this test's loop.
        code = await asyncio.to_thread(main, ["tasks", "apply", str(path)])
        assert code == 0, path
        (task,) = load_task_file(path)
        declared[task.name] = task
    catalog = await _catalog(kafka_namespace)
    assert {t.name: t for t in catalog.all()} == declared
