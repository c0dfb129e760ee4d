"""The ensemble learner and its stacked combiner (real LightGBM, in memory)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flywheel import serde
from flywheel.ensembles import member_texts
from flywheel.events import ModelVersion
from flywheel.registry import RegistryView, champion_change
from flywheel.tasks import Objective, TaskDefinition
from trainer.ensemble import EnsembleLearner, make_learner, resume_learner
from trainer.learner import TaskLearner, candidate_is_worse
from trainer.stacking import MAX_WEIGHT, MIN_STACK_ROWS, StackWindow, fit_stacked

from .streams import make_batch, make_task


def ensemble_task(
    combine: str = "average", objective: str = "binary", label: dict[str, Any] | None = None
) -> TaskDefinition:
    base = make_task(objective, label, max_trees=60, min_events_to_train=100)
    return TaskDefinition.model_validate(
        {
            **base.model_dump(),
            "ensemble": {
                "combine": combine,
                "members": [
                    {"name": "long", "training": {"window_events": 4_000}},
                    {"name": "short", "training": {"window_events": 300, "max_trees": 20}},
                ],
            },
        }
    )


# ---- the stacked combiner -------------------------------------------------------------


def test_stacking_weights_the_informative_member_and_switches_noise_off() -> None:
    rng = np.random.default_rng(3)
    signal = rng.normal(size=2_000)
    y = (signal + rng.normal(scale=0.3, size=2_000) > 0).astype(np.float64)
    informative, noise = 3 * signal, rng.normal(scale=3, size=2_000)
    weights, bias = fit_stacked(Objective.BINARY, [informative, noise], y)
    assert weights[0] > 0.3
    assert weights[1] < 0.05
    assert all(0 <= w <= MAX_WEIGHT for w in weights)
    assert abs(bias) < 0.5


def test_stacking_falls_back_to_the_average_without_evidence() -> None:
    rng = np.random.default_rng(4)
    few = [rng.normal(size=MIN_STACK_ROWS - 1) for _ in range(3)]
    assert fit_stacked(Objective.BINARY, few, np.ones(MIN_STACK_ROWS - 1)) == ((1 / 3,) * 3, 0.0)
    many = [rng.normal(size=500) for _ in range(2)]
    assert fit_stacked(Objective.BINARY, many, np.zeros(500)) == ((0.5, 0.5), 0.0)  # one class


def test_stacking_regression_and_multiclass() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=1_000) * 10 + 3
    good, bad = y + rng.normal(size=1_000), rng.normal(size=1_000) * 10
    weights, bias = fit_stacked(Objective.REGRESSION, [good, bad], y)
    assert weights[0] > 0.8 and weights[1] < 0.1
    labels = rng.integers(0, 3, size=800).astype(np.float64)
    onehot = np.eye(3)[labels.astype(int)] * 4
    weights, bias = fit_stacked(Objective.MULTICLASS, [onehot, rng.normal(size=(800, 3))], labels)
    assert weights[0] > weights[1] and bias == 0.0  # softmax ignores a shared shift


def test_the_stack_window_is_bounded() -> None:
    window = StackWindow(2, capacity=250)
    for _ in range(4):
        window.add([np.zeros(100), np.ones(100)], np.ones(100))
    assert len(window) == 250 and all(len(r) == 250 for r in window.raw)
    with pytest.raises(ValueError, match="member scores"):
        window.add([np.zeros(3)], np.ones(3))


def test_the_gate_verdict() -> None:
    champion = np.full(200, 0.5)
    assert not candidate_is_worse(champion, champion, tolerance=0.02, floor=0.05)
    assert candidate_is_worse(champion, champion + 0.2, tolerance=0.02, floor=0.05)
    assert candidate_is_worse(champion, np.full(200, np.inf), tolerance=0.02, floor=0.05)


# ---- the learner ----------------------------------------------------------------------


@pytest.mark.parametrize("combine", ["average", "stacked"])
def test_an_ensemble_trains_every_member_and_is_promoted_as_a_whole(combine: str) -> None:
    rng = np.random.default_rng(11)
    learner = make_learner(ensemble_task(combine))
    assert isinstance(learner, EnsembleLearner)
    first = learner.score_then_learn(make_batch(rng, 0, 80))
    assert first.promotion is None  # 80 < min_events_to_train
    assert first.candidate.ensemble is not None
    reports = [learner.score_then_learn(make_batch(rng, i, 200)) for i in range(1, 8)]
    last = reports[-1]
    assert learner.champion is not None
    assert last.scored_by is not None and last.batch_metrics["accuracy"] > 0.8
    assert last.live_metrics["accuracy"] > 0.8  # the ensemble's output is what is reported
    assert set(last.member_metrics) == {"long", "short"}
    assert all(m["accuracy"] > 0.7 for m in last.member_metrics.values())
    assert last.held_back == 40
    record = last.candidate
    params = record.ensemble
    assert params is not None and record.model_format == "lightgbm-ensemble"
    assert [m.name for m in params.members] == ["long", "short"]
    # Bounded as single models are: every member within its own max_trees.
    assert params.members[0].trees <= 60 and params.members[1].trees <= 20
    assert record.trees == sum(m.trees for m in params.members)
    assert params.members[1].window_events <= 300
    assert record.calibration.get("method") == "isotonic"
    if combine == "average":
        assert params.weights == (0.5, 0.5) and params.bias == 0.0
    # JSON only, hash-checked, durable as a registry record.
    decoded = serde.decode(ModelVersion, serde.encode(record), max_bytes=16 << 20)
    assert [name for name, _ in member_texts(decoded)] == ["long", "short"]


def test_the_ensemble_gate_keeps_the_served_ensemble_when_the_candidate_is_worse() -> None:
    rng = np.random.default_rng(12)
    learner = EnsembleLearner(ensemble_task())
    for i in range(6):
        learner.score_then_learn(make_batch(rng, i, 200))
    assert learner.champion is not None
    served = learner.champion.version
    # A batch whose first 80% teaches the reversed concept and whose held-back 20%
    # follows the old one: the candidate (its short member learned the reversal) loses.
    flipped, normal = make_batch(rng, 90, 160, flip=True), make_batch(rng, 91, 40)
    batch = flipped.model_copy(
        update={
            "event_ids": flipped.event_ids + normal.event_ids,
            "columns": {k: flipped.columns[k] + normal.columns[k] for k in flipped.columns},
            "labels": [not v for v in flipped.labels] + normal.labels,
        }
    )
    report = learner.score_then_learn(batch)
    assert report.promotion is None
    assert learner.rejected_in_a_row == 1
    assert learner.champion.version == served


def test_trainer_and_ensemble_predictions_agree_with_the_record() -> None:
    rng = np.random.default_rng(13)
    learner = EnsembleLearner(
        ensemble_task("stacked", "multiclass", {"type": "category", "classes": ["lo", "mid", "hi"]})
    )
    for i in range(5):
        learner.score_then_learn(make_batch(rng, i, 200, objective="multiclass"))
    assert learner.champion is not None
    rows = make_batch(rng, 99, 20, objective="multiclass").rows()
    probs = np.asarray(learner.predict_proba(rows))
    assert probs.shape == (20, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_an_ensemble_resumes_from_the_registry() -> None:
    rng = np.random.default_rng(14)
    task = ensemble_task("stacked")
    learner = EnsembleLearner(task)
    view = RegistryView()
    for i in range(5):
        report = learner.score_then_learn(make_batch(rng, i, 200))
        view.add(report.candidate)
        if report.promotion is not None:
            view.add(
                champion_change(
                    view, task.name, report.promotion.version, kind="promotion", reason="t"
                )
            )
    champion = view.champion(task.name)
    assert champion is not None
    resumed = resume_learner(
        task,
        champion=champion,
        latest=view.versions(task.name)[-1],
        next_version=view.next_version(task.name),
    )
    assert isinstance(resumed, EnsembleLearner) and resumed.champion is not None
    assert resumed.champion.version == champion.version
    assert resumed.events_trained == 1_000
    rows = make_batch(rng, 50, 30).rows()
    np.testing.assert_allclose(resumed.predict_proba(rows), learner.predict_proba(rows))
    # It keeps learning, numbering versions after the registry's.
    report = resumed.score_then_learn(make_batch(rng, 5, 200))
    assert report.candidate.version == view.next_version(task.name)
    # A rollback to an older ensemble: served, and the members continue from it.
    oldest = view.versions(task.name)[1]
    resumed.adopt_champion(oldest)
    assert resumed.champion.version == oldest.version
    assert resumed.lead.champion is not None
    assert resumed.lead.champion.record.model_sha256 == oldest.ensemble.members[0].model_sha256  # type: ignore[union-attr]


def test_switching_between_single_and_ensemble() -> None:
    rng = np.random.default_rng(15)
    single_task = make_task(max_trees=60, min_events_to_train=100)
    single = TaskLearner(single_task)
    for i in range(3):
        single.score_then_learn(make_batch(rng, i, 200))
    assert single.champion is not None
    # Becoming an ensemble: every member starts from the single model.
    ensemble = resume_learner(
        ensemble_task(),
        champion=single.champion.record,
        latest=single.champion.record,
        next_version=9,
    )
    assert isinstance(ensemble, EnsembleLearner) and ensemble.champion is None
    assert all(m.champion is not None for m in ensemble.members.values())
    report = ensemble.score_then_learn(make_batch(rng, 3, 200))
    assert report.promotion is not None and report.candidate.version == 9
    # And back: a single learner ignores the ensemble champion and starts afresh.
    back = resume_learner(
        single_task, champion=report.candidate, latest=report.candidate, next_version=10
    )
    assert isinstance(back, TaskLearner) and back.champion is None
    back.adopt_champion(report.candidate)
    assert back.champion is None
