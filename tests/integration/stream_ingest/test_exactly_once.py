"""The audit: kill -9 stream-ingest twice mid-stream; every event is counted exactly once.

Two real ``python -m stream_ingest`` processes share the consumer group: one runs
throughout, the other is SIGKILLed twice and restarted, so partitions also move
between replicas (rebalances, zombie fencing). The stream carries re-sent event ids
and invalid records too; each must reach feedback.dlq exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integration.stream_ingest.conftest import Ingest, feedback, task_definition

TASKS = ("audit.alpha", "audit.beta", "audit.gamma")
EVENTS = 20_000
CHUNK = 500
KILL_AFTER_CHUNKS = (13, 26)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class IngestProcess:
    def __init__(self, ingest: Ingest, name: str, log_dir: Path) -> None:
        self._env = {
            **os.environ,
            "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": ingest.config.bootstrap_servers,
            "FLYWHEEL_TOPIC_PREFIX": ingest.config.topic_prefix,
            "FLYWHEEL_INSTANCE_ID": f".{name}",
            "FLYWHEEL_LOG_FORMAT": "text",
        }
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**self._env, "FLYWHEEL_INGEST_PORT": str(_free_port())}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream_ingest"], env=env, stdout=out, stderr=out
            )

    def assignments(self) -> int:
        """How many times (over all incarnations) this replica was given partitions."""
        if not self.log.exists():
            return 0
        lines = self.log.read_text(errors="replace").splitlines()
        return sum("partitions assigned: [" in ln and "[]" not in ln for ln in lines)

    async def owns_partitions(self, incarnations: int, timeout_s: float = 60) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.assignments() < incarnations:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            assert loop.time() < deadline, f"no partitions assigned: {self.log.read_text()}"
            await asyncio.sleep(0.1)

    def kill(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def _chunk(chunk: int) -> tuple[list[tuple[bytes | None, bytes | None]], str, str]:
    records: list[tuple[bytes | None, bytes | None]] = []
    for i in range(chunk * CHUNK, (chunk + 1) * CHUNK):
        task = TASKS[i % len(TASKS)]
        records.append((task.encode(), feedback(f"e{i:06d}", task, steps=i)))
    # Each chunk also re-sends an earlier id and carries one broken event.
    old = chunk * CHUNK // 2
    resent, invalid = f"e{old:06d}", f"bad{chunk}"
    records.append((TASKS[old % 3].encode(), feedback(resent, TASKS[old % 3])))
    records.append((TASKS[0].encode(), feedback(invalid, TASKS[0], steps="x")))
    return records, resent, invalid


@pytest.mark.slow
async def test_sigkill_twice_loses_nothing_and_counts_nothing_twice(
    ingest: Ingest, tmp_path: Path
) -> None:
    await ingest.apply(*(task_definition(t, max_events=500, max_age_s=0.5) for t in TASKS))
    steady = IngestProcess(ingest, "steady", tmp_path)
    victim = IngestProcess(ingest, "victim", tmp_path)
    steady.start()
    victim.start()
    resent: list[str] = []
    invalid: list[str] = []
    published = 0

    async def publish() -> None:
        nonlocal published
        for chunk in range(EVENTS // CHUNK):
            records, again, bad = _chunk(chunk)
            resent.append(again)
            invalid.append(bad)
            await ingest.publish(records)
            published = chunk + 1
            await asyncio.sleep(0.3)  # ~1,600 events/s: the stream outlasts both kills

    try:
        await victim.owns_partitions(1)
        publisher = asyncio.create_task(publish())
        for incarnation, after_chunks in enumerate(KILL_AFTER_CHUNKS, start=1):
            while published < after_chunks:
                await asyncio.sleep(0.05)
            await victim.owns_partitions(incarnation)
            await asyncio.sleep(0.7)  # let it consume and flush for a moment, then kill it
            assert victim.kill(signal.SIGKILL) == -signal.SIGKILL
            victim.start()
        await publisher
        await victim.owns_partitions(len(KILL_AFTER_CHUNKS) + 1)

        async def all_counted() -> bool:
            return len({e for b in await ingest.batches() for e in b.event_ids}) >= EVENTS

        await ingest.until(all_counted, timeout_s=120)
        await asyncio.sleep(2)  # anything still in flight would show up as a duplicate
    finally:
        for process in (steady, victim):
            if process.proc is not None and process.proc.poll() is None:
                process.kill(signal.SIGTERM)
    counted = collections.Counter(e for b in await ingest.batches() for e in b.event_ids)
    expected = {f"e{i:06d}" for i in range(EVENTS)}
    missing = expected - set(counted)
    duplicated = {e: n for e, n in counted.items() if n > 1}
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"
    assert not duplicated, f"{len(duplicated)} counted twice, e.g. {list(duplicated)[:5]}"
    assert set(counted) == expected

    rejected = collections.Counter(
        (letter.reason, orjson.loads(base64.b64decode(letter.original_b64))["event_id"])
        for letter in await ingest.dead_letters()
    )
    assert rejected == collections.Counter(
        [("duplicate_event_id", e) for e in resent] + [("wrong_type", e) for e in invalid]
    )
