"""CPU the predictor spends logging one prediction to ``predictions.log``, by producer linger.

    .venv/bin/python bench/predictor_log_cost.py [--reps 3] [--count 3000] [--rate 500]

Needs the local stack's Kafka. The predictor's own :class:`PredictionLogSender` and an
idempotent acks=all producer (``flywheel.kafka.make_producer``, as the service builds
it) log ``--count`` entries submitted at ``--rate`` per second, as the HTTP handler
would; the process CPU of the same paced loop without logging is measured beside it
and subtracted. CPU per entry does not depend on what else the shared machine is
doing as much as latency does. Results: bench/results/predictor_log_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import uvloop

if __package__ in (None, ""):
    # Run as a script: make ``bench`` importable from the repo root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.predictor_vs_mlserver import delete_topics
from flywheel.events import PredictionLog
from flywheel.kafka import KafkaConfig, ensure_topics, make_producer
from flywheel.topics import PREDICTIONS_LOG
from predictor.metrics import PredictorMetrics
from predictor.prediction_log import PredictionLogSender
from predictor.service import PRODUCER_LINGER_MS

RESULTS = Path(__file__).resolve().parent / "results" / "predictor_log_cost.json"
LINGERS_MS = (10, 50, PRODUCER_LINGER_MS)


def _entry() -> PredictionLog:
    # As predictor.serving builds it (model_construct: every field given and valid).
    return PredictionLog.model_construct(
        schema_version=1,
        prediction_id=os.urandom(16).hex(),
        task="bench.log",
        model_version=1,
        score=0.5,
        confidence=0.7,
        latency_ms=0.1,
        cached=False,
        entity_id=None,
        served_at=datetime.now(UTC),
    )


async def _paced(count: int, rate: float, submit: Any) -> float:
    """CPU seconds of submitting ``count`` entries at ``rate`` per second."""
    started = time.process_time()
    interval = 1.0 / rate
    loop = asyncio.get_running_loop()
    due = loop.time()
    for _ in range(count):
        submit(_entry())
        due += interval
        await asyncio.sleep(max(0.0, due - loop.time()))
    return time.process_time() - started


async def _run_one(kafka: KafkaConfig, linger_ms: int, count: int, rate: float) -> float:
    producer = make_producer(kafka, linger_ms=linger_ms)
    await producer.start()
    try:
        sender = PredictionLogSender(
            producer, kafka.topic(PREDICTIONS_LOG), PredictorMetrics(), max_queue=count
        )
        sender.start()
        started = time.process_time()
        await _paced(count, rate, sender.submit)
        await sender.stop()  # everything sent and acknowledged
        logged = time.process_time() - started
        if sender.dropped:
            raise RuntimeError(f"{sender.dropped} entries were not logged")
        bare = await _paced(count, rate, lambda entry: None)
        return (logged - bare) / count * 1e6
    finally:
        await producer.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    kafka = KafkaConfig(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        topic_prefix=f"benchlog{uuid4().hex[:8]}.",
    )
    await ensure_topics(kafka)
    runs: dict[int, list[float]] = {linger: [] for linger in LINGERS_MS}
    try:
        await _run_one(kafka, PRODUCER_LINGER_MS, 200, args.rate)  # warm: leaders, metadata
        for _ in range(args.reps):
            for linger in LINGERS_MS:  # interleaved: every linger sees the same machine
                runs[linger].append(await _run_one(kafka, linger, args.count, args.rate))
    finally:
        await delete_topics(kafka)
    return {
        "benchmark": "predictor_log_cost",
        "rate_per_s": args.rate,
        "entries_per_run": args.count,
        "reps": args.reps,
        "service_linger_ms": PRODUCER_LINGER_MS,
        "load_average": os.getloadavg(),
        "cpu_us_per_entry": {
            str(linger): {
                "median": round(statistics.median(values), 1),
                "runs": [round(v, 1) for v in values],
            }
            for linger, values in runs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000, help="entries per run")
    parser.add_argument("--rate", type=float, default=500.0, help="entries per second")
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the service runs
    report = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    for linger, point in report["cpu_us_per_entry"].items():
        print(f"linger {linger:>4} ms: {point['median']:7.1f} µs CPU per entry {point['runs']}")
    print(f"load average {report['load_average']}; written to bench/results/{RESULTS.name}")


if __name__ == "__main__":
    main()
