"""The trainer and the predictor must score a row identically.

Both services encode features through :class:`flywheel.encoding.FeatureEncoding` (the
trainer to learn, the predictor on the hot path) with column order and category codes
from the model version, so a client can never get silently different results; this
test holds them to it: the very matrices are identical, and so are the scores, for
every objective, with seen, unseen and missing values, for single models and for
ensembles (averaged and stacked), explanations included.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from flywheel.events import TrainingBatch
from flywheel.tasks import TaskDefinition
from predictor.scoring import ServingModel
from trainer.ensemble import EnsembleLearner
from trainer.learner import TaskLearner

AGENTS = ["planner", "coder", "reviewer", "tester"]


def _task(
    objective: str,
    label: dict[str, Any],
    calibration: str = "isotonic",
    combine: str | None = None,
) -> TaskDefinition:
    ensemble = None
    if combine is not None:
        ensemble = {
            "combine": combine,
            "members": [
                {"name": "long", "training": {"window_events": 5_000}},
                {"name": "short", "training": {"window_events": 400, "strategy": "window"}},
            ],
        }
    return TaskDefinition.model_validate(
        {
            "ensemble": ensemble,
            "name": f"contract.{objective}",
            "objective": objective,
            "label": label,
            "features": [
                {"name": "steps", "type": "int"},
                {"name": "retries", "type": "float", "nullable": True},
                {"name": "agent", "type": "category"},
                {"name": "urgent", "type": "bool"},
            ],
            "training": {"min_events_to_train": 50, "calibration": calibration},
        }
    )


def _row(rng: random.Random) -> dict[str, Any]:
    return {
        "steps": rng.randrange(40),
        "retries": None if rng.random() < 0.1 else round(rng.random() * 3, 2),
        "agent": rng.choice(AGENTS),
        "urgent": rng.random() < 0.3,
    }


def _label(objective: str, row: dict[str, Any], rng: random.Random) -> Any:
    signal = row["steps"] / 40 + (0.3 if row["agent"] == "coder" else 0.0) + rng.gauss(0, 0.1)
    if objective == "binary":
        return signal > 0.6
    if objective == "multiclass":
        return "low" if signal < 0.4 else "mid" if signal < 0.8 else "high"
    return signal * 10


def _batch(objective: str, rng: random.Random, index: int, size: int = 200) -> TrainingBatch:
    rows = [_row(rng) for _ in range(size)]
    return TrainingBatch(
        batch_id=f"b{index}",
        task=f"contract.{objective}",
        event_ids=[f"e{index}-{i}" for i in range(size)],
        columns={name: [r[name] for r in rows] for name in rows[0]},
        labels=[_label(objective, r, rng) for r in rows],
    )


@pytest.mark.parametrize(
    ("objective", "label", "calibration"),
    [
        ("binary", {"type": "bool"}, "isotonic"),
        ("binary", {"type": "bool"}, "platt"),
        ("multiclass", {"type": "category", "classes": ["low", "mid", "high"]}, "isotonic"),
        ("regression", {"type": "float"}, "none"),
    ],
)
def test_predictor_serves_exactly_what_the_trainer_learned(
    objective: str, label: dict[str, Any], calibration: str
) -> None:
    rng = random.Random(7)
    learner = TaskLearner(_task(objective, label, calibration))
    for i in range(6):
        learner.score_then_learn(_batch(objective, rng, i))
    assert learner.champion is not None
    if calibration != "none":
        assert learner.champion.record.calibration, "no calibration was fitted"
    served = ServingModel.load(learner.champion.record)

    rows = [_row(rng) for _ in range(50)]
    rows[0]["agent"] = "a-category-never-seen"
    rows[1]["retries"] = None
    expected = np.asarray(learner.predict_proba(rows))
    answers = served.predict(rows)
    key = "score" if objective == "regression" else "probability"
    got = np.asarray([answer[key] for answer in answers])

    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert answers[0].get("unknown_categories") == ["agent"]


@pytest.mark.parametrize("combine", ["average", "stacked"])
@pytest.mark.parametrize(
    ("objective", "label", "calibration"),
    [
        ("binary", {"type": "bool"}, "isotonic"),
        ("multiclass", {"type": "category", "classes": ["low", "mid", "high"]}, "isotonic"),
        ("regression", {"type": "float"}, "none"),
    ],
)
def test_predictor_serves_exactly_what_the_trainer_ensemble_learned(
    objective: str, label: dict[str, Any], calibration: str, combine: str
) -> None:
    rng = random.Random(8)
    learner = EnsembleLearner(_task(objective, label, calibration, combine))
    for i in range(6):
        learner.score_then_learn(_batch(objective, rng, i))
    assert learner.champion is not None
    params = learner.champion.record.ensemble
    assert params is not None and params.combine == combine
    if combine == "stacked":
        assert params.weights != (0.5, 0.5), "the stacked weights were never fitted"
    served = ServingModel.load(learner.champion.record)

    rows = [_row(rng) for _ in range(50)]
    rows[0]["agent"] = "a-category-never-seen"
    rows[1]["retries"] = None
    expected = np.asarray(learner.predict_proba(rows))
    answers = served.predict(rows, explain=True)
    key = "score" if objective == "regression" else "probability"
    got = np.asarray([answer[key] for answer in answers])

    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert answers[0].get("unknown_categories") == ["agent"]
    # Explanations: the weighted member SHAP values sum to the ensemble's raw score.
    for answer in answers[:5]:
        contributions = answer["contributions"]
        if objective == "binary":
            p = answer["score"]
            assert sum(contributions.values()) == pytest.approx(np.log(p / (1 - p)), abs=1e-9)
        elif objective == "regression":
            assert sum(contributions.values()) == pytest.approx(answer["score"], abs=1e-9)
        else:
            z = np.asarray([sum(contributions[c].values()) for c in ("low", "mid", "high")])
            softmax = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            np.testing.assert_allclose(softmax, answer["score"], atol=1e-9)


def test_trainer_and_predictor_feed_the_booster_identical_matrices() -> None:
    rng = random.Random(9)
    learner = TaskLearner(_task("binary", {"type": "bool"}))
    for i in range(6):
        learner.score_then_learn(_batch("binary", rng, i))
    assert learner.champion is not None
    served = ServingModel.load(learner.champion.record)

    rows = [_row(rng) for _ in range(30)]
    rows[0]["agent"] = "a-category-never-seen"
    rows[1]["retries"] = None
    del rows[2]["retries"]
    trained_rows = learner.features.encode_rows(rows)
    trained_columns = learner.features.encode_columns(
        {name: [row.get(name) for row in rows] for name in learner.features.names},
        len(rows),
        learn=False,
    )
    served_matrix, unknown = served.encode(rows)

    assert served.columns == tuple(learner.features.names)
    np.testing.assert_array_equal(served_matrix, trained_rows)  # NaN == NaN here
    np.testing.assert_array_equal(served_matrix, trained_columns)
    assert np.isnan(served_matrix[0, served.columns.index("agent")])
    assert np.isnan(served_matrix[2, served.columns.index("retries")])
    assert unknown[0] == ["agent"] and not any(unknown[1:])
