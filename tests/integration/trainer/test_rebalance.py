"""Two trainer processes in one group split the tasks; a join and a SIGKILL lose nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from flywheel.catalog import apply_tasks
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig

from ...unit.trainer.streams import make_batch, make_task
from .helpers import publish_batches, wait_for_events_trained

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = [f"rebalance.t{i}" for i in range(6)]
ROWS = 60


async def _spawn(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trainer", env=env, stderr=out, stdout=out
        )


async def test_two_processes_split_tasks_and_a_sigkill_loses_nothing(
    kafka: KafkaConfig, redis_config: RedisConfig, tmp_path: Path
) -> None:
    tasks = [
        make_task(max_trees=30, trees_per_update=10).model_copy(update={"name": name})
        for name in TASKS
    ]
    await apply_tasks(kafka, tasks)
    env = {
        **os.environ,
        "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        # The default group and transactional ids follow the prefix: private to this test.
        "FLYWHEEL_TOPIC_PREFIX": kafka.topic_prefix,
        "FLYWHEEL_REDIS_URL": redis_config.url,
        "FLYWHEEL_REDIS_KEY_PREFIX": redis_config.key_prefix,
        "FLYWHEEL_TRAINER_PORT": "0",
        "FLYWHEEL_LOG_LEVEL": "INFO",
    }
    rng = np.random.default_rng(21)
    published = dict.fromkeys(TASKS, 0)
    index = 0

    async def wave(rounds: int) -> None:
        nonlocal index
        batches = []
        for _ in range(rounds):
            for name in TASKS:
                batch = make_batch(rng, index, ROWS).model_copy(
                    update={"task": name, "batch_id": f"{name}-{index}"}
                )
                batches.append(batch)
                published[name] += ROWS
                index += 1
        await publish_batches(kafka, batches)

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = await _spawn(env, first_log)
    second: asyncio.subprocess.Process | None = None
    try:
        await _until(lambda: len(_assignments(first_log)) >= 1)
        await wave(3)
        second = await _spawn(env, second_log)
        await wave(3)  # while the second starts and joins: a rebalance mid-stream
        await _until(lambda: any(0 < len(a) < 6 for a in _assignments(second_log)))
        await wave(3)
        first.send_signal(signal.SIGKILL)  # its partitions move after the session timeout
        await first.wait()
        await wave(3)
        registry = await wait_for_events_trained(kafka, published, timeout_s=90)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), timeout=30)

    trained = {name: registry.versions(name)[-1].events_trained for name in TASKS}
    assert trained == published, second_log.read_text()[-2_000:]
    for name in TASKS:
        counts = [v.events_trained for v in registry.versions(name)]
        # Each version adds whole batches on top of its predecessor: none learned twice.
        assert counts == sorted(counts) and len(set(counts)) == len(counts)
        assert all(c % ROWS == 0 for c in counts)
        assert registry.champion(name) is not None
    assert second is not None and second.returncode == 0  # SIGTERM: clean, flushed stop
    first_owned, second_owned = _assignments(first_log), _assignments(second_log)
    # The group split the partitions while both ran, then the survivor took them all.
    assert any(0 < len(owned) < 6 for owned in first_owned + second_owned)
    assert len(second_owned[-1]) == 6


async def _until(condition: Callable[[], bool], timeout_s: float = 90) -> None:
    # Interpreter start-up with LightGBM takes seconds (much longer on a busy machine).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "trainer process did not get there in time"
        await asyncio.sleep(0.2)


def _assignments(log: Path) -> list[list[int]]:
    out = []
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == "partitions assigned":
                out.append(entry["owned"])
    return out
