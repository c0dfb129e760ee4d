"""``flywheel models ...`` against the real broker and Redis (registry written by a learner)."""

from __future__ import annotations

import asyncio
import json
import os
from uuid import uuid4

import numpy as np
import pytest

from flywheel.catalog import delete_task
from flywheel.kafka import KafkaConfig, ensure_topics, wait_for_kafka
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import ModelCache, champion_change, publish_registry_records
from flywheel_cli.__main__ import main
from trainer.learner import TaskLearner

from ...unit.trainer.streams import make_batch, make_task
from .helpers import registry_snapshot

pytestmark = pytest.mark.integration


async def _seed(kafka: KafkaConfig) -> None:
    """Three versions of test.task, v1 then v3 promoted (as the trainer would write them)."""
    await wait_for_kafka(kafka, timeout_s=30)
    await ensure_topics(kafka)
    learner = TaskLearner(make_task())
    rng = np.random.default_rng(3)
    versions = [learner.score_then_learn(make_batch(rng, i, 200)).candidate for i in range(3)]
    registry = await registry_snapshot(kafka)
    records: list = [*versions]
    for number in (1, 3):
        change = champion_change(registry, "test.task", number, kind="promotion", reason="gate")
        registry.add(change)
        records.append(change)
    await publish_registry_records(kafka, records)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(["models", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_show_history_promote_rollback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:16379/0")
    kafka = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=f"t{uuid4().hex[:10]}.")
    redis_prefix = f"test:{uuid4().hex[:10]}:"
    for name, value in {
        "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "FLYWHEEL_TOPIC_PREFIX": kafka.topic_prefix,
        "FLYWHEEL_REDIS_URL": redis_url,
        "FLYWHEEL_REDIS_KEY_PREFIX": redis_prefix,
    }.items():
        monkeypatch.setenv(name, value)
    asyncio.run(_seed(kafka))

    listing = _run(capsys, "list")
    assert listing == [
        {
            "task": "test.task",
            "deleted": False,
            "champion": 3,
            "latest_version": 3,
            "versions_kept": 3,
            "events_trained": 600,
            "metrics": listing[0]["metrics"],  # type: ignore[index]
        }
    ]
    assert "accuracy" in listing[0]["metrics"]  # type: ignore[index]

    shown = _run(capsys, "show", "test.task")
    assert shown["events_trained"] == 600  # type: ignore[index]
    assert shown["champion"]["version"] == 3  # type: ignore[index]
    assert {"accuracy", "auc", "log_loss"} <= set(shown["live_metrics"])  # type: ignore[index]

    history = _run(capsys, "history", "test.task")
    assert [v["version"] for v in history["versions"]] == [1, 2, 3]  # type: ignore[index]
    assert [c["version"] for c in history["champion_changes"]] == [1, 3]  # type: ignore[index]

    promoted = _run(capsys, "promote", "test.task", "2")
    assert promoted["kind"] == "promotion" and promoted["previous_version"] == 3  # type: ignore[index]
    rolled = _run(capsys, "rollback", "test.task")
    assert rolled["kind"] == "rollback" and rolled["version"] == 1  # type: ignore[index]

    registry = asyncio.run(registry_snapshot(kafka))
    assert registry.champion_version("test.task") == 1
    assert [c.kind for c in registry.history("test.task")][-2:] == ["promotion", "rollback"]

    async def cached_champion() -> int | None:
        client = connect_redis(RedisConfig(url=redis_url))
        try:
            cache = ModelCache(client, key_prefix=redis_prefix)
            loaded = await cache.load_champion("test.task")
            keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
            if keys:
                await client.delete(*keys)
            return None if loaded is None else loaded.version
        finally:
            await client.aclose()

    assert asyncio.run(cached_champion()) == 1

    # Clear errors, never a traceback: an unknown version, a task without models.
    assert main(["models", "promote", "test.task", "99"]) == 1
    assert "not in models.registry" in capsys.readouterr().err
    assert main(["models", "show", "no.such.task"]) == 1
    capsys.readouterr()

    # A deleted task keeps its history and is marked as deleted.
    asyncio.run(delete_task(kafka, "test.task"))
    assert _run(capsys, "list")[0]["deleted"] is True  # type: ignore[index]
    assert _run(capsys, "show", "test.task")["deleted"] is True  # type: ignore[index]
    history = _run(capsys, "history", "test.task")
    assert [v["version"] for v in history["versions"]] == [1, 2, 3]  # type: ignore[index]
    assert main(["models", "show", "test.task"]) == 0
    assert "status:          deleted" in capsys.readouterr().out
    assert main(["models", "rollback", "test.task"]) == 1
    assert "was deleted" in capsys.readouterr().err
