"""Synthetic feedback streams for the trainer's tests and benchmarks (deterministic)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.events import TrainingBatch
from flywheel.tasks import TaskDefinition


def make_task(
    objective: str = "binary", label: dict[str, Any] | None = None, **training: Any
) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "name": "test.task",
            "objective": objective,
            "label": label or {"type": "bool"},
            "features": [
                {"name": "a", "type": "float"},
                {"name": "b", "type": "float"},
                {"name": "agent", "type": "category", "nullable": True},
            ],
            "training": training,
        }
    )


def make_batch(
    rng: np.random.Generator,
    index: int,
    rows: int,
    *,
    objective: str = "binary",
    flip: bool = False,
) -> TrainingBatch:
    """``label = a + b (+1 for agent x) > 0``; ``flip`` reverses b's effect (a concept drift)."""
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    agent = rng.choice(np.array(["x", "y", "z"]), size=rows)
    signal = a + (-b if flip else b) + (agent == "x") * 1.0
    labels: list[Any]
    if objective == "binary":
        labels = [bool(v > 0) for v in signal]
    elif objective == "multiclass":
        labels = [["lo", "mid", "hi"][int(np.digitize(v, [-0.7, 0.7]))] for v in signal]
    else:
        labels = [float(v) for v in signal]
    return TrainingBatch(
        batch_id=f"b{index}",
        task="test.task",
        event_ids=[f"e{index}-{k}" for k in range(rows)],
        columns={"a": a.tolist(), "b": b.tolist(), "agent": agent.tolist()},
        labels=labels,
    )
