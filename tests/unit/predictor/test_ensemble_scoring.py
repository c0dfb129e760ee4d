"""Serving ensemble versions: loading, integrity, hot swaps, explanations."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from flywheel.ensembles import member_texts, pack_members
from flywheel.errors import ModelIntegrityError
from flywheel.events import ModelVersion
from flywheel.tasks import TaskDefinition
from predictor.metrics import PredictorMetrics
from predictor.scoring import ServingModel
from predictor.store import ModelStore
from tests.unit.predictor.fakes import FakeSource
from tests.unit.trainer.streams import make_batch, make_task
from trainer.ensemble import EnsembleLearner
from trainer.learner import TaskLearner

ROWS: list[dict[str, Any]] = [
    {"a": 0.4, "b": -1.2, "agent": "x"},
    {"a": -2.0, "b": 0.3, "agent": None},
    {"a": 1.0, "b": 1.0, "agent": "never-seen"},
]


def _versions() -> tuple[ModelVersion, ModelVersion]:
    """A single-model champion and a stacked-ensemble champion of the same task."""
    rng = np.random.default_rng(21)
    batches = [make_batch(rng, i, 200) for i in range(5)]
    base = make_task(min_events_to_train=100)
    single = TaskLearner(base)
    ensemble = EnsembleLearner(
        TaskDefinition.model_validate(
            {
                **base.model_dump(),
                "ensemble": {
                    "combine": "stacked",
                    "members": [
                        {"name": "long"},
                        {"name": "short", "training": {"window_events": 300}},
                    ],
                },
            }
        ),
        first_version=2,
    )
    for batch in batches:
        single.score_then_learn(batch)
        ensemble.score_then_learn(batch)
    assert single.champion is not None and ensemble.champion is not None
    first = single.champion.record.model_copy(update={"version": 1})
    return first, ensemble.champion.record


@pytest.fixture(scope="module")
def versions() -> tuple[ModelVersion, ModelVersion]:
    return _versions()


def test_an_ensemble_is_served_with_its_combiner(versions: tuple[ModelVersion, ...]) -> None:
    _, record = versions
    model = ServingModel.load(record)
    assert model.ensemble is not None and model.ensemble.names == ("long", "short")
    assert model.row_cost_us > 0
    answers = model.predict(ROWS, explain=True)
    assert answers[2]["unknown_categories"] == ["agent"]
    for answer in answers:
        assert 0 <= answer["probability"] <= 1
        assert answer["confidence"] == max(answer["probability"], 1 - answer["probability"])

    # Contributions are the members' SHAP values, weighted as their raw scores are.
    params = record.ensemble
    assert params is not None
    matrix, _ = model.encode(ROWS)
    expected = sum(
        w * lgb.Booster(model_str=text).predict(matrix, pred_contrib=True)
        for w, (_, text) in zip(params.weights, member_texts(record), strict=True)
    )
    for row, answer in zip(np.asarray(expected), answers, strict=True):
        got = answer["contributions"]
        np.testing.assert_allclose([got["a"], got["b"], got["agent"]], row[:3], atol=1e-12)
        assert got["bias"] == pytest.approx(row[3] + params.bias, abs=1e-12)


def test_a_tampered_member_is_refused_even_with_a_matching_outer_hash(
    versions: tuple[ModelVersion, ...],
) -> None:
    _, record = versions
    texts = member_texts(record)
    forged = pack_members([texts[0], (texts[1][0], texts[0][1])])  # short := long's trees
    tampered = record.model_copy(
        update={"model_text": forged, "model_sha256": ModelVersion.hash_text(forged)}
    )
    with pytest.raises(ModelIntegrityError, match="member short"):
        ServingModel.load(tampered)


async def test_hot_swap_between_a_single_model_and_an_ensemble(
    versions: tuple[ModelVersion, ModelVersion],
) -> None:
    single, ensemble = versions
    source = FakeSource(single)
    store = ModelStore(source, PredictorMetrics())
    assert await store.load_champions() == 1
    before = store.get(single.task)
    assert before is not None and before.ensemble is None
    source.add(ensemble)
    assert await store.swap_to(ensemble.task, ensemble.version, ensemble.model_sha256)
    after = store.get(ensemble.task)
    assert after is not None and after.version == ensemble.version and after.ensemble is not None
    assert after.predict(ROWS) != before.predict(ROWS)
    # And back (an operator's rollback to the single model).
    assert await store.swap_to(single.task, single.version, single.model_sha256)
    rolled_back = store.get(single.task)
    assert rolled_back is not None and rolled_back.ensemble is None
