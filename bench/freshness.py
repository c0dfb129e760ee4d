"""Freshness: seconds from a feedback event's publish to the model trained on it.

Runs stream-ingest and the trainer as real processes (``python -m stream_ingest``,
``python -m trainer``) in a private topic namespace, applies one task with the default
flush policy (500 events or 2 s) and the default training policy, and publishes
feedback events at a steady rate. One task lives on one partition, so events are
learned in publish order and event ``k`` is in the first version whose
``events_trained >= k + 1``. For every event we measure, on this machine's clock:

* **version**: publish -> that ModelVersion committed in ``models.registry``;
* **champion**: publish -> a version that learned it announced on ``models.published``
  (the champion/challenger gate tests a version on the *next* batch, so this adds
  about one flush interval).

The first 10% of events (the first model, process warm-up) are left out. Reference in
the same run: the flush delay alone (publish -> its TrainingBatch committed in
``training.batches``), the floor that any trainer sits on.

Run: ``.venv/bin/python bench/freshness.py [--rates 250,1000] [--seconds 20]``
Writes ``bench/results/freshness.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition

from flywheel import serde
from flywheel.catalog import apply_tasks
from flywheel.events import FeedbackEvent, ModelPublished, ModelVersion, TrainingBatch
from flywheel.kafka import KafkaConfig, ensure_topics, make_consumer, make_producer
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import decode_registry_record
from flywheel.tasks import TaskDefinition
from flywheel.topics import FEEDBACK_EVENTS, MODELS_PUBLISHED, MODELS_REGISTRY, TRAINING_BATCHES

RESULTS = Path(__file__).with_name("results") / "freshness.json"
LOGS = Path("/tmp/flywheel-bench-freshness")
TASK = TaskDefinition.model_validate(
    {
        "name": "bench.freshness",
        "objective": "binary",
        "label": {"type": "bool"},
        "features": [
            {"name": "steps", "type": "int"},
            {"name": "retries", "type": "float"},
            {"name": "agent", "type": "category"},
        ],
    }
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Observed:
    """Receipt times (time.time()) of what the services committed."""

    def __init__(self) -> None:
        self.versions: list[tuple[int, float]] = []  # (events_trained, receipt time)
        self.events_of: dict[int, int] = {}  # version -> events_trained
        self.published: list[tuple[int, float]] = []  # (events_trained, receipt time)
        self.batches: list[tuple[int, float]] = []  # (cumulative events batched, time)
        self.batched = 0


async def watch(config: KafkaConfig, seen: Observed, stop: asyncio.Event) -> None:
    consumer = make_consumer(config, group_id=None, read_committed=True)
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(config.topic(spec), p)
            for spec in (MODELS_REGISTRY, MODELS_PUBLISHED, TRAINING_BATCHES)
            for p in cluster.partitions_for_topic(config.topic(spec)) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        pending: list[ModelPublished] = []
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for tp, records in polled.items():
                for record in records:
                    if record.value is None:
                        continue
                    if tp.topic == config.topic(MODELS_REGISTRY):
                        event = decode_registry_record(record.value)
                        if isinstance(event, ModelVersion):
                            seen.events_of[event.version] = event.events_trained
                            seen.versions.append((event.events_trained, now))
                    elif tp.topic == config.topic(MODELS_PUBLISHED):
                        pending.append(serde.decode(ModelPublished, record.value))
                    else:
                        batch = serde.decode(TrainingBatch, record.value, max_bytes=2_000_000)
                        seen.batched += len(batch)
                        seen.batches.append((seen.batched, now))
            for announcement in list(pending):
                if announcement.version in seen.events_of:
                    seen.published.append((seen.events_of[announcement.version], now))
                    pending.remove(announcement)
    finally:
        await consumer.stop()


async def forget_cache(prefix: str) -> None:
    """The trainer cached champions under the run's own prefix: leave Redis clean."""
    redis = connect_redis(RedisConfig(key_prefix=prefix))
    try:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def first_covering(points: list[tuple[int, float]], ordinal: int) -> float | None:
    """Time of the first point whose count reaches ``ordinal`` (counts only grow)."""
    best: float | None = None
    for count, at in points:
        if count >= ordinal and (best is None or at < best):
            best = at
    return best


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "p99": ordered[int(0.99 * (len(ordered) - 1))],
        "n": float(len(ordered)),
    }


async def run(rate: float, seconds: float) -> dict[str, object]:
    prefix = f"fresh{uuid.uuid4().hex[:8]}."
    config = KafkaConfig(client_id="bench-freshness", topic_prefix=prefix)
    await ensure_topics(config)
    await apply_tasks(config, [TASK])
    env = {
        **os.environ,
        "FLYWHEEL_TOPIC_PREFIX": prefix,
        "FLYWHEEL_REDIS_KEY_PREFIX": f"bench:{prefix}",
        "FLYWHEEL_INGEST_PORT": str(free_port()),
        "FLYWHEEL_TRAINER_PORT": str(free_port()),
        "FLYWHEEL_LOG_LEVEL": "WARNING",
    }
    logs = LOGS / prefix.rstrip(".")
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    procs = []
    for module in ("stream_ingest", "trainer"):
        with (logs / f"{module}.log").open("wb") as out:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", module, env=env, stdout=out, stderr=out
                )
            )
    seen, stop = Observed(), asyncio.Event()
    watcher = asyncio.create_task(watch(config, seen, stop))
    producer = make_producer(config)
    await producer.start()
    publish_times: list[float] = []
    try:
        # Warm-up: wait until both processes consumed something (imports take seconds).
        warm = FeedbackEvent(event_id="warmup-0", task=TASK.name, features=features(0), label=True)
        publish_times.append(time.time())
        await producer.send_and_wait(
            config.topic(FEEDBACK_EVENTS), serde.encode(warm), key=TASK.name.encode()
        )
        while not seen.versions:  # noqa: ASYNC110 - polls the watcher's plain list
            await asyncio.sleep(0.2)
        total = int(rate * seconds)
        start = time.monotonic()
        for k in range(1, total + 1):
            due = start + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = FeedbackEvent(
                event_id=f"ev-{k}", task=TASK.name, features=features(k), label=k % 3 != 0
            )
            publish_times.append(time.time())
            await producer.send(
                config.topic(FEEDBACK_EVENTS), serde.encode(event), key=TASK.name.encode()
            )
        await producer.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (  # noqa: ASYNC110 - as above
            not seen.versions or max(c for c, _ in seen.versions) < total + 1
        ):
            await asyncio.sleep(0.5)
        await asyncio.sleep(5)  # the last version's announcement waits for the next batch
    finally:
        await producer.stop()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await asyncio.wait_for(proc.wait(), timeout=30)
        await forget_cache(env["FLYWHEEL_REDIS_KEY_PREFIX"])

    version_s, champion_s, flush_s = [], [], []
    skip = max(1, len(publish_times) // 10)
    for ordinal, published in enumerate(publish_times, start=1):
        if ordinal <= skip:
            continue
        for points, out in (
            (seen.versions, version_s),
            (seen.published, champion_s),
            (seen.batches, flush_s),
        ):
            at = first_covering(points, ordinal)
            if at is not None:
                out.append(at - published)
    return {
        "benchmark": "freshness",
        "rate_events_per_s": rate,
        "events": len(publish_times),
        "flush_policy": TASK.flush.model_dump(),
        "version_published_s": summary(version_s),
        "champion_announced_s": summary(champion_s),
        "reference_flush_only_s": summary(flush_s),
        "versions": len(seen.versions),
        "announcements": len(seen.published),
        "target": "version p50 <= 2 s with default flush",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "logs": str(logs),
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def features(k: int) -> dict[str, int | float | str]:
    return {
        "steps": k % 17,
        "retries": float(k % 5),
        "agent": ("planner", "coder", "critic")[k % 3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="250,1000", help="feedback events per second, one run each"
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    runs = [asyncio.run(run(float(rate), args.seconds)) for rate in args.rates.split(",")]
    load = Path("/proc/loadavg").read_text().split()[:3]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs, "load_average_at_end": load}, indent=2) + "\n")
    for result in runs:
        print(f"rate {result['rate_events_per_s']:.0f} events/s:")
        for name in ("reference_flush_only_s", "version_published_s", "champion_announced_s"):
            stats = result[name]
            assert isinstance(stats, dict)
            if stats:
                print(
                    f"  {name:<24} p50 {stats['p50']:.2f} s  p90 {stats['p90']:.2f} s  "
                    f"p99 {stats['p99']:.2f} s  (n={stats['n']:.0f})"
                )
            else:
                print(f"  {name:<24} no samples")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
