"""LightGBM's single-row fast path gives exactly what Booster.predict gives."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from flywheel.tasks import Objective
from predictor.scoring import ServingModel
from predictor.single_row import SingleRowScorer
from tests.unit.predictor.modelkit import ROW, train_version


def _rows(n: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = np.column_stack(
        [
            rng.integers(0, 40, n).astype(float),
            rng.random(n) * 3,
            rng.integers(0, 4, n).astype(float),  # 3: a category the model never saw
            rng.integers(0, 2, n).astype(float),
        ]
    )
    rows[::5, 1] = np.nan  # missing values take the model's missing branch
    rows[::7, 2] = np.nan
    return rows


@pytest.mark.parametrize(
    "objective", [Objective.BINARY, Objective.MULTICLASS, Objective.REGRESSION]
)
def test_same_output_as_booster_predict(objective: Objective) -> None:
    model = ServingModel.load(train_version(objective=objective, rounds=30))
    scorer = SingleRowScorer(model.booster)
    for row in _rows(200):
        matrix = row.reshape(1, -1)
        expected = model.booster.predict(matrix, num_threads=1)
        got = scorer.scores(matrix)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)


def test_a_model_with_a_best_iteration_stops_there_as_predict_does() -> None:
    rows = _rows(400)
    flips = np.random.default_rng(5).random(len(rows)) < 0.3  # noise: it soon overfits
    target = ((np.nan_to_num(rows[:, 0]) > 20) ^ flips).astype(float)
    train, valid = lgb.Dataset(rows[:300], target[:300]), lgb.Dataset(rows[300:], target[300:])
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "learning_rate": 0.5},
        train,
        num_boost_round=60,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(3, verbose=False)],
        keep_training_booster=True,  # all trees kept, best_iteration beside them
    )
    assert 0 < booster.best_iteration < booster.num_trees()
    scorer = SingleRowScorer(booster)
    for row in rows[:50]:
        matrix = row.reshape(1, -1)
        assert np.array_equal(scorer.scores(matrix), booster.predict(matrix, num_threads=1))


def test_serving_model_scores_single_rows_through_it_and_refuses_wrong_widths() -> None:
    model = ServingModel.load(train_version())
    assert model.single_row is not None
    [one] = model.predict([ROW])
    [first, _] = model.predict([ROW, {**ROW, "steps": 3}])  # a batch: Booster.predict
    assert one == first
    with pytest.raises(ValueError, match="one row of 4 features"):
        model.single_row.scores(np.zeros((1, 3)))
