"""Confidence calibration fitted on out-of-sample scores, stored as JSON (never pickled).

The trainer fits calibration on the recent window of *prequential* scores: what the
champion predicted for events before it learned them. In-sample scores would be
over-confident and teach the calibrator the wrong map. Applying them is
:func:`flywheel.calibration.calibrator_from`, shared with the predictor:

* ``{"method": "platt", "a": A, "b": B}``            - ``sigmoid(A * logit(p) + B)``;
* ``{"method": "isotonic", "x": [...], "y": [...]}`` - ``interp(p, x, y)``, x ascending;
* ``{"method": "temperature", "temperature": T}``    - multiclass ``softmax(log(p) / T)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from flywheel.calibration import logit, softmax_with_temperature
from trainer.encoding import Matrix, Vector

__all__ = ["expected_calibration_error", "fit_calibration"]

_EPS = 1e-12
_FLOOR = 1e-3
# Fewer out-of-sample scores than this and a calibration map is mostly noise.
MIN_CALIBRATION_ROWS = 100
_TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))


def fit_calibration(method: str, scores: Matrix | Vector, labels: Vector) -> dict[str, Any]:
    """Parameters mapping ``scores`` (binary: P(1); multiclass: rows of P) to calibrated ones.

    Returns ``{}`` (identity) when there is too little data or only one class.
    """
    if method == "none" or len(labels) < MIN_CALIBRATION_ROWS:
        return {}
    if scores.ndim == 2:
        # Multiclass: one temperature keeps the class ranking and fixes over-confidence.
        y = labels.astype(np.int64)
        rows = np.arange(len(y))
        losses = [
            -np.log(np.clip(softmax_with_temperature(scores, t)[rows, y], _EPS, 1.0)).mean()
            for t in _TEMPERATURES
        ]
        return {
            "method": "temperature",
            "temperature": round(float(_TEMPERATURES[int(np.argmin(losses))]), 6),
        }
    if len(np.unique(labels)) < 2:
        return {}
    if method == "platt":
        model = LogisticRegression(C=1e6)
        model.fit(logit(scores).reshape(-1, 1), labels)
        return {
            "method": "platt",
            "a": round(float(model.coef_[0, 0]), 8),
            "b": round(float(model.intercept_[0]), 8),
        }
    # Never claim certainty: one surprise would cost an unbounded log loss.
    iso = IsotonicRegression(y_min=_FLOOR, y_max=1 - _FLOOR, out_of_bounds="clip")
    iso.fit(scores, labels)
    x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    y_fit = np.asarray(iso.y_thresholds_, dtype=np.float64)
    if x.size < 2:
        return {}
    return {"method": "isotonic", "x": np.round(x, 8).tolist(), "y": np.round(y_fit, 8).tolist()}


def expected_calibration_error(scores: Matrix | Vector, labels: Vector, *, bins: int = 10) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins.

    Binary scores are P(1) against the 0/1 label; multiclass uses the top class.
    """
    if len(labels) == 0:
        return float("nan")
    if scores.ndim == 2:
        confidence = scores.max(axis=1)
        correct = (scores.argmax(axis=1) == labels).astype(np.float64)
    else:
        confidence = scores
        correct = labels.astype(np.float64)
    edges = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = edges == b
        if mask.any():
            total += mask.sum() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total / len(labels))
