"""LightGBM plumbing for the learner: parameters, the three update kinds, loading.

Every booster runs single-threaded (``num_threads=1``: the trainer shares its cores
with the rest of the stack and scales out by partitions) and silent
(``verbosity=-1``). Models travel as LightGBM text and are checked by sha256 on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from flywheel.errors import ModelError, ModelIntegrityError
from flywheel.events import ModelVersion
from flywheel.tasks import Objective, TrainingPolicy
from trainer.encoding import Matrix, Vector

__all__ = ["Model", "fit", "load", "params_for", "predict", "refit"]

REFIT_DECAY = 0.5

_OBJECTIVES = {
    Objective.BINARY: "binary",
    Objective.MULTICLASS: "multiclass",
    Objective.REGRESSION: "regression",
    # TrainingBatch carries no query groups, so ranking is learned pointwise.
    Objective.RANKING: "regression",
}


@dataclass(slots=True)
class Model:
    """A trained booster and the registry record describing it."""

    booster: lgb.Booster
    record: ModelVersion
    iterations: int

    @property
    def version(self) -> int:
        return self.record.version


# Capacity sized to the rows a fit has: about this many rows per leaf (at least
# MIN_LEAVES, at most the policy's num_leaves), and leaves of at least this fraction of
# the rows (at least MIN_DATA_IN_LEAF). 200 events do not support 31-leaf trees.
ROWS_PER_LEAF = 100
MIN_LEAVES = 10
MIN_DATA_IN_LEAF = 10
MIN_DATA_FRACTION = 0.005


def params_for(
    objective: Objective,
    policy: TrainingPolicy,
    *,
    num_classes: int,
    seed: int,
    rows: int | None = None,
) -> dict[str, Any]:
    """LightGBM parameters; with ``rows``, tree capacity scaled to a fit on that many rows."""
    leaves, min_data = policy.num_leaves, MIN_DATA_IN_LEAF
    if rows is not None:
        leaves = min(leaves, max(MIN_LEAVES, rows // ROWS_PER_LEAF))
        min_data = max(MIN_DATA_IN_LEAF, int(rows * MIN_DATA_FRACTION))
    params: dict[str, Any] = {
        "objective": _OBJECTIVES[objective],
        "num_leaves": leaves,
        "learning_rate": policy.learning_rate,
        "num_threads": 1,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "min_data_in_leaf": min_data,
        "max_bin": 63,
        "feature_pre_filter": False,
        "max_cat_to_onehot": 8,
    }
    if objective is Objective.MULTICLASS:
        params["num_class"] = num_classes
    return params


def fit(
    params: dict[str, Any],
    x: Matrix,
    y: Vector,
    *,
    feature_names: list[str],
    categorical: list[int],
    rounds: int,
    init_model: lgb.Booster | None = None,
) -> lgb.Booster:
    """``rounds`` boosting rounds on ``x``; continuing ``init_model`` when given."""
    data = lgb.Dataset(
        x,
        y,
        feature_name=feature_names,
        categorical_feature=categorical or "auto",
        params=params,
        free_raw_data=True,
    )
    return lgb.train(params, data, num_boost_round=rounds, init_model=init_model)


def refit(booster: lgb.Booster, x: Matrix, y: Vector) -> lgb.Booster:
    """The same trees with leaf values refitted to ``x`` (half old, half new)."""
    return booster.refit(x, y, decay_rate=REFIT_DECAY)


def predict(booster: lgb.Booster, x: Matrix, *, raw_score: bool = False) -> Matrix | Vector:
    """Probabilities (or values); with ``raw_score`` log-odds / class logits (or values)."""
    out: Matrix | Vector = np.asarray(booster.predict(x, raw_score=raw_score), dtype=np.float64)
    return out


def load(record: ModelVersion) -> Model:
    """A registry record as a usable model; :class:`ModelIntegrityError` on a bad hash."""
    if record.is_ensemble:
        raise ModelError(f"{record.registry_key()}: an ensemble, not one LightGBM model")
    if ModelVersion.hash_text(record.model_text) != record.model_sha256:
        raise ModelIntegrityError(f"{record.registry_key()}: model text does not match its hash")
    booster = lgb.Booster(model_str=record.model_text)
    return Model(booster, record, booster.current_iteration())
