"""In-process cost of one single-row predict: the ASGI call, from scope to response bytes.

    .venv/bin/python bench/predictor_inprocess.py [--before <git rev>] [--reps 5]

The predictor's app (``create_app``) over a real :class:`Predictor` (the benchmark's
model from bench/predictor_vs_mlserver.py: 8 features, 100 trees x 31 leaves;
schema check, scoring, metrics and the predictions.log queue append all included)
is called directly with a fixed scope and body, in a loop, on uvloop as the service
runs. No socket and no HTTP parsing: this is Flywheel's own per-request work, the
part a change to the predict path can move, measured without the machine's noise
that an HTTP benchmark carries. Redis is configured but down (a cheap model never
consults the prediction cache anyway) and the log queue is emptied between batches.

With ``--before``, the ``services/predictor`` package of that revision is measured
the same way in alternation with the checkout's (each in its own process).
Results: bench/results/predictor_inprocess.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make ``bench`` importable from the repo root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.predictor_before_after import extract
from bench.predictor_vs_mlserver import ROOT, TASK, flywheel_body, train

RESULTS = ROOT / "bench" / "results" / "predictor_inprocess.json"
BATCH = 1_000


class _Installed:
    """A model source with nothing to load: the model is installed directly."""

    async def champions(self) -> list[Any]:
        return []

    async def fetch(self, task: str, version: int) -> None:
        return None


async def _measure(batches: int) -> list[float]:
    """µs per request for each of ``batches`` batches of BATCH requests."""
    from redis.asyncio import Redis

    from predictor.app import create_app
    from predictor.auth import ApiKeyring
    from predictor.cache import PredictionCache, RedisGate
    from predictor.config import Settings
    from predictor.keys import RedisKeys
    from predictor.metrics import PredictorMetrics
    from predictor.online import EntityStore
    from predictor.prediction_log import PredictionLogSender
    from predictor.scoring import ServingModel
    from predictor.serving import Predictor
    from predictor.store import ModelStore

    version, rows = train()
    metrics = PredictorMetrics()
    redis = Redis.from_url("redis://127.0.0.1:1/0")  # never connected: the gate is down
    gate = RedisGate(redis, metrics, retry_s=60)
    store = ModelStore(_Installed(), metrics)
    store.install(ServingModel.load(version))
    keys = RedisKeys("bench:")
    log = PredictionLogSender(None, "predictions.log", metrics, max_queue=10 * BATCH)
    predictor = Predictor(
        store=store,
        cache=PredictionCache(gate, metrics, ttl_s=60),
        entities=EntityStore(gate, keys),
        log=log,
        keyring=ApiKeyring.open(),
        gate=gate,
        metrics=metrics,
        keys=keys,
        max_rows=10_000,
        cache_min_row_cost_us=Settings().predictor_cache_min_row_cost_us,  # as served
        started=True,
    )
    app = create_app(predictor)
    bodies = [flywheel_body(rows[i : i + 1]).encode() for i in range(BATCH)]
    path = f"/v1/tasks/{TASK}/predict"
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
    }
    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def one(body: bytes) -> None:
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive() -> dict[str, Any]:
            return message

        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await app({**scope, "headers": headers}, receive, send)

    for body in bodies:  # warm
        await one(body)
    log._queue.clear()
    gc.collect()
    gc.freeze()  # as the service does after start-up
    results = []
    for _ in range(batches):
        started = time.perf_counter()
        for body in bodies:
            await one(body)
        results.append((time.perf_counter() - started) / BATCH * 1e6)
        log._queue.clear()  # outside the timing: the sender would have taken them
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return results


def _child(batches: int) -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the service runs
    print(json.dumps(asyncio.run(_measure(batches))))


def _run(pythonpath: str | None, batches: int) -> list[float]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(batches)],
        env=env,
        capture_output=True,
        check=True,
        timeout=600,
    )
    values: list[float] = json.loads(done.stdout.splitlines()[-1])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to measure beside the checkout")
    parser.add_argument("--reps", type=int, default=5, help="processes per side")
    parser.add_argument("--batches", type=int, default=5, help=f"batches of {BATCH} per process")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        sides: dict[str, str | None] = {"after": None}
        if args.before:
            sides = {"before": str(extract(args.before, Path(tmp))), **sides}
        for _ in range(args.reps):
            for name, pythonpath in sides.items():
                # Each process's fastest batch: the least disturbed by the neighbours.
                runs.setdefault(name, []).append(min(_run(pythonpath, args.batches)))
    report = {
        "benchmark": "predictor_inprocess",
        "before": args.before,
        "reps": args.reps,
        "requests_per_batch": BATCH,
        "load_average": os.getloadavg(),
        "us_per_request": {
            name: {"median": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]}
            for name, v in runs.items()
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    for name, point in report["us_per_request"].items():
        print(f"{name:>6}: {point['median']:6.1f} µs per single-row request {point['runs']}")
    print(f"load average {report['load_average']}; written to bench/results/{RESULTS.name}")


if __name__ == "__main__":
    main()
