"""Optimizer windows: cost per prediction and per evaluation, beside exact percentiles.

Each run feeds the same simulated hour of traffic (``--predictions`` predictions over
3600 s, every other one labelled later) to:

* reference - the obvious exact design: every latency kept in a deque per task for the
  longest window, percentiles by sorting the window's values (``numpy.percentile``,
  "lower" method, the same rank rule as the sketch) at every evaluation;
* optimizer - :class:`optimizer.tracker.PerformanceTracker` (slots + log-bucketed sketch,
  plus the label join and per-version accuracy the reference does not even do).

Both evaluate every 10 s of simulated time (360 evaluations). Reported: median over
``--runs`` of the wall time of feeding + evaluating, peak traced memory, and the
largest relative error of the sketch's p50/p95/p99 against the exact ones.
Writes ``bench/results/optimizer_windows.json``.

Run: ``.venv/bin/python bench/optimizer_windows.py [--predictions 200000] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
import tracemalloc
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from flywheel.events import FeedbackEvent, PredictionLog
from flywheel.tasks import Objective
from optimizer.tracker import PerformanceTracker
from optimizer.windows import WINDOWS

T0 = 1_800_000_000.0
TASKS = ["a.task", "b.task", "c.task", "d.task"]
QUANTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


def traffic(n: int, seed: int) -> list[tuple[float, PredictionLog, FeedbackEvent | None]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + 3600.0 * i / n
        task = TASKS[i % len(TASKS)]
        prediction = PredictionLog(
            prediction_id=f"p{i}",
            task=task,
            model_version=1 + i * 3 // n,
            score=rng.random(),
            latency_ms=rng.lognormvariate(1.0, 0.6),
            cached=rng.random() < 0.2,
            served_at=datetime.fromtimestamp(t, UTC),
        )
        label = None
        if i % 2 == 0:
            label = FeedbackEvent(
                event_id=f"e{i}",
                task=task,
                features={"x": 1},
                label=rng.random() < 0.5,
                prediction_id=f"p{i}",
                occurred_at=datetime.fromtimestamp(t + 2, UTC),
            )
        out.append((t, prediction, label))
    return out


def run_reference(
    events: list[tuple[float, PredictionLog, FeedbackEvent | None]],
) -> dict[tuple[str, str, str], float]:
    latencies: dict[str, deque[tuple[float, float]]] = {t: deque() for t in TASKS}
    next_eval = T0 + 10
    for t, prediction, _ in events:
        series = latencies[prediction.task]
        series.append((t, prediction.latency_ms))
        while series and series[0][0] < t - 3600:
            series.popleft()
        if t >= next_eval:
            next_eval += 10
            evaluate_reference(latencies, t)
    return evaluate_reference(latencies, events[-1][0])


def evaluate_reference(
    latencies: dict[str, deque[tuple[float, float]]], now: float
) -> dict[tuple[str, str, str], float]:
    out = {}
    for task, series in latencies.items():
        for window, length in WINDOWS.items():
            values = np.fromiter((v for t, v in series if t >= now - length), dtype=float)
            if values.size:
                for name, q in QUANTILES.items():
                    out[(task, window, name)] = float(
                        np.percentile(values, q * 100, method="lower")
                    )
    return out


def run_optimizer(
    events: list[tuple[float, PredictionLog, FeedbackEvent | None]],
) -> dict[tuple[str, str, str], float]:
    tracker = PerformanceTracker(shape_of=lambda _t: (Objective.BINARY, ()))
    next_eval = T0 + 10
    for t, prediction, label in events:
        tracker.observe_prediction(prediction, t)
        if label is not None:
            tracker.observe_feedback(label, t)
        if t >= next_eval:
            next_eval += 10
            tracker.prune(t)
            tracker.snapshot(t)
    samples = tracker.snapshot(events[-1][0])
    return {
        (s.task or "", s.window, s.name): s.value
        for s in samples
        if s.name in QUANTILES and "version" not in s.labels
    }


def timed(fn, events):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn(events)
    return time.perf_counter() - started, result


def peak_memory(fn, events) -> int:  # type: ignore[no-untyped-def]
    # Separate from the timed runs: tracing allocations slows Python several-fold.
    tracemalloc.start()
    fn(events)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    events = traffic(args.predictions, seed=1)
    ref_times, opt_times = [], []
    worst_error = 0.0
    for _ in range(args.runs):
        ref_t, exact = timed(run_reference, events)
        opt_t, approx = timed(run_optimizer, events)
        ref_times.append(ref_t)
        opt_times.append(opt_t)
        for key, value in exact.items():
            worst_error = max(worst_error, abs(approx[key] - value) / value)
    result = {
        "benchmark": "optimizer_windows",
        "predictions": args.predictions,
        "labels": args.predictions // 2,
        "evaluations": 360,
        "runs": args.runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "reference_exact_deque": {
            "median_s": statistics.median(ref_times),
            "peak_traced_bytes": peak_memory(run_reference, events),
        },
        "optimizer_tracker": {
            "median_s": statistics.median(opt_times),
            "peak_traced_bytes": peak_memory(run_optimizer, events),
            "per_prediction_us": statistics.median(opt_times) / args.predictions * 1e6,
        },
        "worst_relative_quantile_error": worst_error,
    }
    out = Path(__file__).parent / "results" / "optimizer_windows.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.predictions} predictions (+{args.predictions // 2} labels), 360 evaluations, "
        f"median of {args.runs}:\n"
        f"  reference (exact, deque + numpy): {result['reference_exact_deque']['median_s']:.2f} s, "
        f"peak {result['reference_exact_deque']['peak_traced_bytes'] / 2**20:.1f} MiB\n"
        f"  optimizer (slots + sketch + join): {result['optimizer_tracker']['median_s']:.2f} s, "
        f"peak {result['optimizer_tracker']['peak_traced_bytes'] / 2**20:.1f} MiB, "
        f"{result['optimizer_tracker']['per_prediction_us']:.1f} us/prediction\n"
        f"  worst quantile error vs exact: {worst_error:.2%}\n  -> {out}"
    )


if __name__ == "__main__":
    main()
