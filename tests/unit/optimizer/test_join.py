"""Label join: either side may come first, waiting rooms are bounded by age and count."""

from __future__ import annotations

import pytest

from flywheel.events import FeedbackEvent, PredictionLog
from flywheel.tasks import Objective
from optimizer.join import LabelJoin, infer_objective, score_outcome


def prediction(pid: str, score: float | list[float] = 0.9) -> PredictionLog:
    return PredictionLog(prediction_id=pid, task="t", model_version=1, score=score, latency_ms=1)


def label(pid: str | None, value: bool | str | float = True) -> FeedbackEvent:
    return FeedbackEvent(event_id=f"e-{pid}", task="t", features={}, label=value, prediction_id=pid)


def test_label_after_prediction_joins() -> None:
    join = LabelJoin()
    assert join.add_prediction(prediction("p1"), 0.0) is None
    joined = join.add_label(label("p1"), 5.0)
    assert joined is not None
    assert joined.prediction.prediction_id == "p1"
    assert join.joined == 1
    assert len(join) == 0


def test_label_before_prediction_waits_and_joins() -> None:
    join = LabelJoin()
    assert join.add_label(label("p1"), 0.0) is None
    joined = join.add_prediction(prediction("p1"), 1.0)
    assert joined is not None
    assert joined.label.event_id == "e-p1"


def test_ttl_expires_both_rooms() -> None:
    join = LabelJoin(ttl_s=60)
    join.add_prediction(prediction("p1"), 0.0)
    join.add_label(label("orphan"), 10.0)
    join.add_prediction(prediction("p2"), 100.0)
    join.expire(now=80.0)
    assert (join.expired_predictions, join.expired_labels) == (1, 1)
    assert join.add_label(label("p1"), 81.0) is None  # too late: p1 is gone
    assert join.add_label(label("p2"), 81.0) is not None


def test_count_bound_evicts_the_oldest() -> None:
    join = LabelJoin(max_waiting=2)
    for i in range(3):
        join.add_prediction(prediction(f"p{i}"), float(i))
    assert join.evicted == 1
    assert join.add_label(label("p0"), 5.0) is None
    assert join.add_label(label("p2"), 5.0) is not None


def test_a_label_without_prediction_id_cannot_be_parked() -> None:
    with pytest.raises(ValueError, match="prediction_id"):
        LabelJoin().add_label(label(None), 0.0)


@pytest.mark.parametrize(
    ("objective", "score", "value", "classes", "error"),
    [
        (Objective.BINARY, 0.8, True, (), 0.0),
        (Objective.BINARY, 0.2, True, (), 1.0),
        (Objective.BINARY, [0.7, 0.3], False, (), 0.0),
        (Objective.MULTICLASS, [0.1, 0.7, 0.2], "b", ("a", "b", "c"), 0.0),
        (Objective.MULTICLASS, [0.1, 0.7, 0.2], 2, (), 1.0),
        (Objective.REGRESSION, 3.5, 5.0, (), 1.5),
    ],
)
def test_outcomes(
    objective: Objective,
    score: float | list[float],
    value: object,
    classes: tuple[str, ...],
    error: float,
) -> None:
    outcome = score_outcome(objective, score, value, classes)
    assert outcome is not None
    assert outcome.error == error


def test_unknown_class_cannot_be_judged() -> None:
    assert score_outcome(Objective.MULTICLASS, [0.5, 0.5], "zzz", ("a", "b")) is None


def test_objective_guess() -> None:
    assert infer_objective([0.1, 0.9], "a") is Objective.MULTICLASS
    assert infer_objective(0.3, True) is Objective.BINARY
    assert infer_objective(0.3, 2.5) is Objective.REGRESSION
