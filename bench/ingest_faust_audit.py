"""Kill -9 audit of the faust-streaming probe (evidence for docs/stream-ingest.md).

Publishes N feedback events for three tasks into a private topic namespace while the
probe (``bench/ingest_faust_probe.py``) runs; SIGKILLs it twice mid-stream, restarts
it, then reads ``training.batches`` (read_committed) and counts every event id:
missing and duplicated must both be 0.

Run: ``.venv/bin/python bench/ingest_faust_audit.py [N]``
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import TopicPartition

from flywheel.kafka import KafkaConfig, ensure_topics, make_consumer, make_producer
from flywheel.topics import FEEDBACK_DLQ, FEEDBACK_EVENTS, TRAINING_BATCHES, TopicSpec

TASKS = ("audit.alpha", "audit.beta", "audit.gamma")
PROBE = Path(__file__).with_name("ingest_faust_probe.py")


def start_probe(prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLYWHEEL_TOPIC_PREFIX": prefix}
    return subprocess.Popen(
        [sys.executable, str(PROBE), "worker", "-l", "warn"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def read_ids(config: KafkaConfig) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for spec in (TRAINING_BATCHES, FEEDBACK_DLQ):
        seen.update(await read_topic_ids(config, spec))
    return seen


async def read_topic_ids(config: KafkaConfig, spec: TopicSpec) -> collections.Counter[str]:
    topic = config.topic(spec)
    consumer = make_consumer(config, group_id=None, read_committed=True)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(spec.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        seen: collections.Counter[str] = collections.Counter()
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            for records in (await consumer.getmany(*pending, timeout_ms=1000)).values():
                for record in records:
                    seen.update(orjson.loads(record.value)["event_ids"])
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return seen
    finally:
        await consumer.stop()


async def main(total: int) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(topic_prefix=prefix)
    await ensure_topics(config)
    log = Path(f"/tmp/faust-audit-{prefix}log")
    probe = start_probe(prefix, log)
    # A second, long-lived member of the same group: partitions are split between the two.
    steady = [start_probe(prefix, log) for _ in range(int(os.environ.get("EXTRA_WORKERS", "0")))]
    producer = make_producer(config)
    await producer.start()
    kills = {total // 3, 2 * total // 3}
    sent: list[str] = []
    try:
        for i in range(total):
            task = TASKS[i % len(TASKS)]
            event_id = f"e{i:07d}"
            value = orjson.dumps(
                {"event_id": event_id, "task": task, "features": {"x": i}, "label": True}
            )
            await producer.send(config.topic(FEEDBACK_EVENTS), value, key=task.encode())
            sent.append(event_id)
            if i % 500 == 0:
                await producer.flush()
                await asyncio.sleep(0.25)
            if i in kills:
                await producer.flush()
                await asyncio.sleep(3)
                probe.send_signal(signal.SIGKILL)
                probe.wait()
                print(f"SIGKILL after {i + 1} events published")
                probe = start_probe(prefix, log)
        await producer.flush()
    finally:
        await producer.stop()
    deadline = time.monotonic() + 120
    seen: collections.Counter[str] = collections.Counter()
    while time.monotonic() < deadline:
        seen = await read_ids(config)
        if len(seen) >= total:
            break
        await asyncio.sleep(3)
    await asyncio.sleep(5)
    seen = await read_ids(config)
    for worker in (probe, *steady):
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    missing = [e for e in sent if e not in seen]
    duplicated = {e: n for e, n in seen.items() if n > 1}
    print(
        f"prefix={prefix} published={total} distinct_in_batches={len(seen)} "
        f"missing={len(missing)} duplicated_ids={len(duplicated)} "
        f"extra_copies={sum(n - 1 for n in duplicated.values())} log={log}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
