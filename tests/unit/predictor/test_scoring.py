from __future__ import annotations

import math

import numpy as np
import pytest

from flywheel.calibration import calibrator_from
from flywheel.errors import EventValidationError, ModelError, ModelIntegrityError
from flywheel.tasks import Objective
from predictor.scoring import ServingModel
from tests.unit.predictor.modelkit import ROW, train_version


@pytest.fixture(scope="module")
def binary() -> ServingModel:
    return ServingModel.load(train_version())


def test_tampered_text_is_refused() -> None:
    record = train_version()
    tampered = record.model_copy(update={"model_text": record.model_text.replace("1", "2", 1)})
    with pytest.raises(ModelIntegrityError, match="hashes to"):
        ServingModel.load(tampered)


def test_binary_prediction_has_probability_label_and_confidence(binary: ServingModel) -> None:
    [result] = binary.predict([ROW])
    assert 0 < result["score"] < 1
    assert result["label"] is (result["probability"] >= 0.5)
    assert result["confidence"] == pytest.approx(
        max(result["probability"], 1 - result["probability"])
    )
    # Same booster, same encoding: the raw LightGBM answer for the encoded row.
    row = np.array([[12, 0.5, 1, 1]], dtype=float)
    assert result["score"] == pytest.approx(float(binary.booster.predict(row)[0]))


def test_contributions_sum_to_the_raw_score(binary: ServingModel) -> None:
    [result] = binary.predict([ROW], explain=True)
    contributions = result["contributions"]
    assert set(contributions) == {"steps", "retries", "agent", "cached", "bias"}
    logit = math.log(result["score"] / (1 - result["score"]))
    assert sum(contributions.values()) == pytest.approx(logit, rel=1e-6)


def test_unknown_category_is_scored_as_missing_and_reported(binary: ServingModel) -> None:
    [result] = binary.predict([{**ROW, "agent": "never-seen"}])
    assert result["unknown_categories"] == ["agent"]
    row = np.array([[12, 0.5, np.nan, 1]], dtype=float)
    assert result["score"] == pytest.approx(float(binary.booster.predict(row)[0]))


def test_nullable_feature_may_be_left_out(binary: ServingModel) -> None:
    row = {k: v for k, v in ROW.items() if k != "cached"}
    binary.check(row)
    [result] = binary.predict([row])
    assert 0 < result["score"] < 1


@pytest.mark.parametrize(
    ("features", "field", "reason"),
    [
        ({k: v for k, v in ROW.items() if k != "steps"}, "features.steps", "missing_feature"),
        ({**ROW, "steps": "twelve"}, "features.steps", "wrong_type"),
        ({**ROW, "steps": True}, "features.steps", "wrong_type"),
        ({**ROW, "colour": "red"}, "features.colour", "unexpected_feature"),
        ({**ROW, "agent": 3}, "features.agent", "wrong_type"),
    ],
)
def test_check_names_the_feature(
    binary: ServingModel, features: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(EventValidationError) as caught:
        binary.check(features)
    assert caught.value.field == field
    assert caught.value.reason == reason
    assert field in str(caught.value)


def test_multiclass_labels_and_per_class_contributions() -> None:
    model = ServingModel.load(train_version(objective=Objective.MULTICLASS))
    [result] = model.predict([ROW], explain=True)
    assert len(result["score"]) == 3
    assert sum(result["score"]) == pytest.approx(1.0)
    assert result["label"] in ("low", "mid", "high")
    assert set(result["contributions"]) == {"low", "mid", "high"}


def test_regression_has_no_confidence() -> None:
    model = ServingModel.load(train_version(objective=Objective.REGRESSION))
    [result] = model.predict([ROW])
    assert isinstance(result["score"], float)
    assert result["confidence"] is None


def test_calibration_from_the_model_is_applied() -> None:
    model = ServingModel.load(train_version(calibration={"method": "platt", "a": 0.5, "b": 0.0}))
    [result] = model.predict([ROW])
    p = result["score"]
    expected = 1 / (1 + math.exp(-0.5 * math.log(p / (1 - p))))
    assert result["probability"] == pytest.approx(expected)


def test_calibration_methods() -> None:
    p = np.array([0.1, 0.5, 0.9])
    assert calibrator_from({})(p).tolist() == p.tolist()
    iso = calibrator_from({"method": "isotonic", "x": [0.0, 1.0], "y": [0.2, 0.8]})
    assert iso(p).tolist() == pytest.approx([0.26, 0.5, 0.74])
    soft = calibrator_from({"method": "temperature", "temperature": 2.0})(np.array([[0.8, 0.2]]))
    assert soft.sum() == pytest.approx(1.0)
    assert 0.5 < soft[0, 0] < 0.8


@pytest.mark.parametrize(
    "params",
    [
        {"method": "magic"},
        {"method": "platt", "a": "x", "b": 0},
        {"method": "isotonic", "x": [0.5, 0.1], "y": [0, 1]},
        {"method": "temperature", "temperature": 0},
    ],
)
def test_unusable_calibration_refuses_the_model(params: dict[str, object]) -> None:
    with pytest.raises(ModelError, match="calibration"):
        calibrator_from(params)
