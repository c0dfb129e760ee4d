"""Ingest throughput: events/s from publish to ``training.batches``, beside raw aiokafka.

Each run, in a fresh topic namespace:

* reference - the same pre-encoded feedback events produced with aiokafka and consumed
  back with a plain consumer (no validation, no transactions): the broker + client
  ceiling on this machine;
* ingest - a real ``python -m stream_ingest`` process (one process: one core at most)
  consumes them while they are produced; the clock stops when the last event is
  counted in a committed ``training.batches`` message (read_committed).

Reports medians over ``--runs`` (>= 3), the ingest process's CPU seconds, and writes
``bench/results/ingest_throughput.json``.

Run: ``.venv/bin/python bench/ingest_throughput.py [--events 100000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from flywheel import serde
from flywheel.catalog import apply_tasks
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, ensure_topics, make_consumer, make_producer
from flywheel.tasks import TaskDefinition
from flywheel.topics import ALL_TOPICS, FEEDBACK_EVENTS, TRAINING_BATCHES

TASKS = ("bench.alpha", "bench.beta", "bench.gamma")
RESULTS = Path(__file__).with_name("results") / "ingest_throughput.json"


def task(name: str) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "name": name,
            "objective": "binary",
            "label": {"type": "bool"},
            "features": [
                {"name": "steps", "type": "int"},
                {"name": "retries", "type": "float"},
                {"name": "agent", "type": "category"},
            ],
            # Default size, short age: the last partial batch of a run would otherwise
            # wait up to the 2 s default and turn a throughput number into a latency one.
            "flush": {"max_events": 500, "max_age_s": 0.25},
        }
    )


def events(n: int, run: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        name = TASKS[i % len(TASKS)]
        event = FeedbackEvent(
            event_id=f"r{run}-{i}",
            task=name,
            features={"steps": i % 50, "retries": (i % 7) / 2, "agent": f"agent{i % 5}"},
            label=i % 3 == 0,
            source="bench",
        )
        out.append((name.encode(), serde.encode(event)))
    return out


async def produce(config: KafkaConfig, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send ``records`` through whole record batches: a per-message ``send`` costs more
    Python time than the ingest spends per event, and would make this a producer benchmark."""
    producer = make_producer(config)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in partitions}
        for key, value in records:
            by_partition[DefaultPartitioner()(key, partitions, partitions)].append((key, value))
        sends = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    sends.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            if batch.record_count():
                sends.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def count_until(
    config: KafkaConfig, topic: str, partitions: int, total: int, *, batches: bool, skip: int = 0
) -> tuple[float, float, int]:
    """Read ``topic`` from the start until ``total`` events were seen.

    Returns (time the first events after ``skip`` arrived, time the last did, events in
    that first arrival).
    """
    consumer = make_consumer(config, group_id=None, read_committed=True, max_poll_records=10_000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, first_at, first_events = 0, 0.0, 0
        while seen < total:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                if batches:
                    got = sum(len(orjson.loads(r.value)["event_ids"]) for r in records)
                else:
                    got = len(records)
                seen += got
                if not first_at and seen > skip:
                    first_at, first_events = time.perf_counter(), seen - skip
        return first_at, time.perf_counter(), first_events
    finally:
        await consumer.stop()


async def namespace(bootstrap: str) -> KafkaConfig:
    config = KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}.")
    await ensure_topics(config)
    return config


async def drop(config: KafkaConfig) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers)
    await admin.start()
    try:
        names = [config.topic(s) for s in ALL_TOPICS]
        names.append(config.topic_prefix + "stream-ingest.dedup-changelog")
        await admin.delete_topics(names)
    except Exception as exc:
        print(f"(could not delete bench topics: {exc})")
    finally:
        await admin.close()


async def reference_run(bootstrap: str, records: list[tuple[bytes, bytes]]) -> float:
    config = await namespace(bootstrap)
    topic = config.topic(FEEDBACK_EVENTS)
    await asyncio.sleep(1)  # let the new partitions get their leaders
    try:
        start = time.perf_counter()
        reader = asyncio.create_task(
            count_until(config, topic, FEEDBACK_EVENTS.partitions, len(records), batches=False)
        )
        await produce(config, topic, records)
        return len(records) / ((await reader)[1] - start)
    finally:
        await drop(config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm_up_events() -> list[tuple[bytes, bytes]]:
    features = {"steps": 1, "retries": 0.0, "agent": "w"}
    return [
        (
            t.encode(),
            serde.encode(FeedbackEvent(event_id=f"warm{i}", task=t, features=features, label=True)),
        )
        for i, t in enumerate(TASKS)
    ]


class IngestProcess:
    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        env = {
            **os.environ,
            "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
            "FLYWHEEL_TOPIC_PREFIX": config.topic_prefix,
            "FLYWHEEL_INGEST_PORT": str(free_port()),
            "FLYWHEEL_LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_ingest"], env=env)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


async def ingest_live(bootstrap: str, records: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    """Events/s publish -> training.batches with the ingest running; and its CPU-seconds."""
    config = await namespace(bootstrap)
    await apply_tasks(config, [task(t) for t in TASKS])
    ingest = IngestProcess(config)
    batches = config.topic(TRAINING_BATCHES)
    try:
        # Warm-up: one event per task proves the ingest owns its partitions.
        warm = warm_up_events()
        await produce(config, config.topic(FEEDBACK_EVENTS), warm)
        await count_until(config, batches, TRAINING_BATCHES.partitions, len(warm), batches=True)
        cpu_before = ingest.cpu()
        start = time.perf_counter()
        reader = asyncio.create_task(
            count_until(
                config, batches, TRAINING_BATCHES.partitions, len(records) + len(warm), batches=True
            )
        )
        await produce(config, config.topic(FEEDBACK_EVENTS), records)
        _, last, _ = await reader
        return len(records) / (last - start), ingest.cpu() - cpu_before
    finally:
        ingest.stop()
        await drop(config)


async def ingest_drain(bootstrap: str, records: list[tuple[bytes, bytes]]) -> float:
    """Events/s the ingest alone sustains on a backlog (the producer is out of the way)."""
    config = await namespace(bootstrap)
    await apply_tasks(config, [task(t) for t in TASKS])
    await produce(config, config.topic(FEEDBACK_EVENTS), records)
    ingest = IngestProcess(config)
    try:
        first, last, first_events = await count_until(
            config,
            config.topic(TRAINING_BATCHES),
            TRAINING_BATCHES.partitions,
            len(records),
            batches=True,
        )
        # From the first committed batch to the last: start-up and group join excluded.
        return (len(records) - first_events) / (last - first)
    finally:
        ingest.stop()
        await drop(config)


def machine() -> dict[str, object]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def main(n: int, runs: int, bootstrap: str) -> None:
    reference, live, drain, cpu = [], [], [], []
    load_before = os.getloadavg()[0]
    for run in range(runs):
        records = events(n, run)
        reference.append(await reference_run(bootstrap, records))
        rate, seconds = await ingest_live(bootstrap, records)
        live.append(rate)
        cpu.append(seconds)
        drain.append(await ingest_drain(bootstrap, events(n, runs + run)))
        print(
            f"run {run + 1}: raw aiokafka {reference[-1]:,.0f} ev/s | ingest end to end "
            f"{rate:,.0f} ev/s ({seconds:.2f} CPU-s) | ingest on a backlog {drain[-1]:,.0f} ev/s"
        )
    median = statistics.median
    result = {
        "benchmark": "ingest_throughput",
        "events_per_run": n,
        "runs": runs,
        "reference_raw_aiokafka_events_per_s_median": median(reference),
        "ingest_end_to_end_events_per_s_median": median(live),
        "ingest_backlog_events_per_s_median": median(drain),
        "ingest_events_per_cpu_second_median": median(n / c for c in cpu),
        "reference_runs": reference,
        "end_to_end_runs": live,
        "backlog_runs": drain,
        "ingest_cpu_seconds_runs": cpu,
        "target_events_per_s": 20_000,
        "machine": {**machine(), "load_average_1m_at_start": load_before},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"median of {runs} runs x {n:,} events ({RESULTS}):")
    for label, key in (
        ("raw aiokafka produce+consume (reference)", "reference_raw_aiokafka_events_per_s_median"),
        (
            "ingest end to end (publish -> training.batches)",
            "ingest_end_to_end_events_per_s_median",
        ),
        ("ingest draining a backlog", "ingest_backlog_events_per_s_median"),
        ("ingest events per CPU-second", "ingest_events_per_cpu_second_median"),
    ):
        print(f"  {label:50s} {result[key]:>10,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    args = parser.parse_args()
    asyncio.run(main(args.events, max(args.runs, 1), args.bootstrap))
