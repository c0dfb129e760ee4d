"""Trainer update time per batch at batch 10 and batch 500, and model size over time.

Proves boundedness: the trainer's TaskLearner (default policy: window 5,000 events,
200 trees, strategy ``auto``) against the reference it replaces, append-only
``init_model`` continuation (+20 trees on every batch, never compacted), fed the same
drifting stream (500-event batches, the default flush size; the concept flips at
batch 250) in the same process, alternating batch by batch so machine load hits both
alike.

"Update time at batch N" = median of the updates of batches N-5..N+5 (wall and CPU
seconds, the whole score-then-learn for the learner; train + serialise for the
reference). Target: learner's batch-500 time <= 1.2 x its batch-10 time.

Run: ``.venv/bin/python bench/trainer_update.py [--batches 500] [--rows 500]``
Writes ``bench/results/trainer_update.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from flywheel.events import TrainingBatch
from flywheel.tasks import TaskDefinition
from trainer.learner import TaskLearner

RESULTS = Path(__file__).with_name("results") / "trainer_update.json"
TASK = TaskDefinition.model_validate(
    {
        "name": "bench.update",
        "objective": "binary",
        "label": {"type": "bool"},
        "features": [
            {"name": "a", "type": "float"},
            {"name": "b", "type": "float"},
            {"name": "c", "type": "float"},
            {"name": "agent", "type": "category"},
        ],
    }
)
AGENTS = np.array([f"agent{i}" for i in range(12)])


def make_batch(rng: np.random.Generator, index: int, rows: int, flipped: bool) -> TrainingBatch:
    a, b, c = rng.normal(size=rows), rng.normal(size=rows), rng.normal(size=rows)
    agent = rng.choice(AGENTS, size=rows)
    bonus = np.isin(agent, AGENTS[:4]) * 0.8
    signal = a + (-1 if flipped else 1) * b + 0.5 * c * a + bonus + rng.normal(0, 0.3, rows)
    return TrainingBatch(
        batch_id=f"b{index}",
        task=TASK.name,
        event_ids=[f"e{index}.{k}" for k in range(rows)],
        columns={"a": a.tolist(), "b": b.tolist(), "c": c.tolist(), "agent": agent.tolist()},
        labels=[bool(v > 0) for v in signal],
    )


class AppendOnly:
    """The reference: init_model continuation, +trees every batch, nothing ever dropped."""

    def __init__(self, trees_per_update: int = 20) -> None:
        self.trees_per_update = trees_per_update
        self.booster: lgb.Booster | None = None
        self.codes = {name: i for i, name in enumerate(AGENTS)}
        self.correct = 0

    def update(self, batch: TrainingBatch) -> tuple[int, int]:
        x = np.column_stack(
            [
                batch.columns["a"],
                batch.columns["b"],
                batch.columns["c"],
                [self.codes[str(v)] for v in batch.columns["agent"]],
            ]
        ).astype(np.float64)
        y = np.asarray(batch.labels, dtype=np.float64)
        if self.booster is not None:  # test-then-train, like the learner
            scores = np.asarray(self.booster.predict(x), dtype=np.float64)
            self.correct += int(((scores > 0.5) == y).sum())
        params = {
            "objective": "binary",
            "num_threads": 1,
            "verbosity": -1,
            "learning_rate": 0.1,
            "num_leaves": 31,
            "min_data_in_leaf": 10,
            "max_bin": 63,
        }
        data = lgb.Dataset(x, y, categorical_feature=[3], params=params)
        self.booster = lgb.train(
            params, data, num_boost_round=self.trees_per_update, init_model=self.booster
        )
        text = self.booster.model_to_string()  # what a registry would have to store
        return self.booster.num_trees(), len(text)


def around(values: list[float], batch: int, radius: int = 5) -> float:
    lo, hi = max(0, batch - 1 - radius), min(len(values), batch + radius)
    return statistics.median(values[lo:hi])


def timed(fn: Any, *args: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def machine() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": len(Path("/proc/cpuinfo").read_text().split("processor")) - 1,
        "python": platform.python_version(),
        "lightgbm": lgb.__version__,
        "load_average_at_start": list(Path("/proc/loadavg").read_text().split()[:3]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--rows", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(42)
    learner, reference = TaskLearner(TASK), AppendOnly()
    series: dict[str, list[float]] = {
        k: []
        for k in (
            "learner_wall",
            "learner_cpu",
            "learner_trees",
            "learner_bytes",
            "reference_wall",
            "reference_cpu",
            "reference_trees",
            "reference_bytes",
        )
    }
    learner_correct = 0
    strategies: dict[str, int] = {}
    started = machine()
    for i in range(args.batches):
        batch = make_batch(rng, i, args.rows, flipped=i >= args.batches // 2)
        report, learner_wall, cpu = timed(learner.score_then_learn, batch)
        learner_correct += round(report.batch_metrics.get("accuracy", 0) * len(batch))
        strategies[report.strategy] = strategies.get(report.strategy, 0) + 1
        series["learner_wall"].append(learner_wall)
        series["learner_cpu"].append(cpu)
        series["learner_trees"].append(report.candidate.trees)
        series["learner_bytes"].append(len(report.candidate.model_text))
        (trees, size), wall, cpu = timed(reference.update, batch)
        series["reference_wall"].append(wall)
        series["reference_cpu"].append(cpu)
        series["reference_trees"].append(trees)
        series["reference_bytes"].append(size)
        if (i + 1) % 50 == 0:
            print(
                f"batch {i + 1}: learner {learner_wall:.3f}s/{report.candidate.trees} trees, "
                f"reference {series['reference_wall'][-1]:.3f}s/{trees} trees",
                flush=True,
            )

    early, late = 10, args.batches
    scored = (args.batches - 1) * args.rows
    timings: dict[str, dict[str, float]] = {}
    for who, prefix in (("learner", "learner"), ("reference_append_only", "reference")):
        numbers = {
            f"{kind}_s_at_batch_{n}": around(series[f"{prefix}_{kind}"], n)
            for kind in ("wall", "cpu")
            for n in (early, late)
        }
        for kind in ("wall", "cpu"):
            numbers[f"{kind}_ratio_{late}_vs_{early}"] = (
                numbers[f"{kind}_s_at_batch_{late}"] / numbers[f"{kind}_s_at_batch_{early}"]
            )
        timings[who] = numbers
    result: dict[str, Any] = {
        "benchmark": "trainer_update",
        "batches": args.batches,
        "rows_per_batch": args.rows,
        "policy": TASK.training.model_dump(),
        "strategies_used": strategies,
        **timings,
        "learner_prequential_accuracy": learner_correct / scored,
        "reference_prequential_accuracy": reference.correct / scored,
        "model_size_over_time": {
            str(n): {
                "learner_trees": series["learner_trees"][n - 1],
                "learner_bytes": series["learner_bytes"][n - 1],
                "reference_trees": series["reference_trees"][n - 1],
                "reference_bytes": series["reference_bytes"][n - 1],
            }
            for n in sorted({1, 10, 50, 100, 250, 400, args.batches} & set(range(1, late + 1)))
        },
        "target": "learner batch-500 update time <= 1.2 x batch-10",
        "machine": started,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    mine, ref = timings["learner"], timings["reference_append_only"]
    for kind in ("cpu", "wall"):
        print(
            f"\nupdate time ({kind} s, median of batches +-5): learner batch {early} "
            f"{mine[f'{kind}_s_at_batch_{early}']:.3f} -> batch {late} "
            f"{mine[f'{kind}_s_at_batch_{late}']:.3f} "
            f"(x{mine[f'{kind}_ratio_{late}_vs_{early}']:.2f}); append-only reference "
            f"{ref[f'{kind}_s_at_batch_{early}']:.3f} -> {ref[f'{kind}_s_at_batch_{late}']:.3f} "
            f"(x{ref[f'{kind}_ratio_{late}_vs_{early}']:.2f})"
        )
    print(
        f"prequential accuracy: learner {result['learner_prequential_accuracy']:.3f}, "
        f"append-only {result['reference_prequential_accuracy']:.3f}; "
        f"trees at the end: learner {series['learner_trees'][-1]:.0f}, "
        f"append-only {series['reference_trees'][-1]:.0f}"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
