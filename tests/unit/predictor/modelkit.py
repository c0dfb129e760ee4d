"""Small real LightGBM models for the predictor's tests (trained here, never pickled)."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from flywheel.events import ModelVersion
from flywheel.tasks import FeatureSpec, FeatureType, Objective

AGENTS = ["planner", "coder", "critic"]
SCHEMA = (
    FeatureSpec(name="steps", type=FeatureType.INT),
    FeatureSpec(name="retries", type=FeatureType.FLOAT),
    FeatureSpec(name="agent", type=FeatureType.CATEGORY),
    FeatureSpec(name="cached", type=FeatureType.BOOL, nullable=True),
)
ROW: dict[str, Any] = {"steps": 12, "retries": 0.5, "agent": "coder", "cached": True}


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.integers(0, 40, n).astype(float),
            rng.random(n) * 3,
            rng.integers(0, len(AGENTS), n).astype(float),
            rng.integers(0, 2, n).astype(float),
        ]
    )
    logit = 0.15 * (x[:, 0] - 20) - 0.8 * x[:, 1] + (x[:, 2] == 1) * 1.5 + rng.normal(0, 0.5, n)
    return x, logit


def train_version(
    task: str = "demo.task",
    version: int = 1,
    *,
    objective: Objective = Objective.BINARY,
    rounds: int = 20,
    seed: int = 0,
    calibration: dict[str, Any] | None = None,
) -> ModelVersion:
    x, logit = _data(2_000, seed)
    params: dict[str, Any] = {"verbose": -1, "num_leaves": 15, "seed": seed, "num_threads": 1}
    classes: list[str] = []
    if objective is Objective.BINARY:
        params["objective"] = "binary"
        y = (logit > 0).astype(float)
    elif objective is Objective.MULTICLASS:
        params.update(objective="multiclass", num_class=3)
        y = np.digitize(logit, [-1.0, 1.0]).astype(float)
        classes = ["low", "mid", "high"]
    else:
        params["objective"] = "regression"
        y = logit
    dataset = lgb.Dataset(
        x, y, feature_name=[s.name for s in SCHEMA], categorical_feature=[2], free_raw_data=False
    )
    booster = lgb.train(params, dataset, num_boost_round=rounds)
    text = booster.model_to_string()
    return ModelVersion(
        task=task,
        version=version,
        objective=objective,
        model_text=text,
        model_sha256=ModelVersion.hash_text(text),
        feature_schema=SCHEMA,
        category_mappings={"agent": list(AGENTS)},
        label_classes=classes,
        calibration=calibration or {},
        trees=booster.num_trees(),
        events_trained=2_000,
        metrics={"auc": 0.9, "log_loss": 0.3},
    )
