"""Prequential ("test-then-train") metrics: a model scored on events before it learns them.

:func:`batch_metrics` scores one batch; :class:`PrequentialWindow` keeps the last N
out-of-sample predictions of a task so the live numbers (accuracy, AUC, log loss, or
RMSE/MAE, ECE and the no-change baseline) are computed exactly over a recent window
rather than averaged per batch.

The no-change baseline predicts each event's label to be the previous event's label:
a model that cannot beat it has learned nothing about the features.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from trainer.calibration import expected_calibration_error
from trainer.encoding import Matrix, Vector

__all__ = [
    "PrequentialWindow",
    "batch_metrics",
    "gate_loss",
    "no_change_predictions",
    "row_losses",
]

_EPS = 1e-12


def _probability_matrix(scores: Matrix | Vector) -> Matrix:
    if scores.ndim == 2:
        return scores
    p = np.clip(scores, 0.0, 1.0)
    return np.column_stack([1.0 - p, p])


def row_losses(classifier: bool, scores: Matrix | Vector, labels: Vector) -> Vector:
    """Per-event loss: log loss, or squared error for regression."""
    if not classifier:
        out: Vector = (scores - labels) ** 2
        return out
    probs = _probability_matrix(scores)
    picked = probs[np.arange(len(labels)), labels.astype(np.int64)]
    logs: Vector = -np.log(np.clip(picked, _EPS, 1.0))
    return logs


def gate_loss(classifier: bool, scores: Matrix | Vector, labels: Vector) -> float:
    """The loss champion and challenger are compared on: log loss, or RMSE for regression."""
    if len(labels) == 0:
        return math.nan
    mean = float(row_losses(classifier, scores, labels).mean())
    return mean if classifier else math.sqrt(mean)


def no_change_predictions(labels: Vector, previous: float | None) -> Vector:
    """Each event's previous label (the first uses ``previous``, NaN if none)."""
    shifted = np.empty_like(labels)
    shifted[0] = math.nan if previous is None else previous
    shifted[1:] = labels[:-1]
    return shifted


def batch_metrics(
    classifier: bool, scores: Matrix | Vector, labels: Vector, baseline: Vector
) -> dict[str, float]:
    """Metrics of ``scores`` (probabilities, or values for regression) against ``labels``."""
    out: dict[str, float] = {"n": float(len(labels))}
    if len(labels) == 0:
        return out
    known = ~np.isnan(baseline)
    if not classifier:
        err = scores - labels
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
        out["mae"] = float(np.mean(np.abs(err)))
        if known.any():
            base_err = baseline[known] - labels[known]
            out["baseline_rmse"] = float(np.sqrt(np.mean(base_err**2)))
            out["baseline_mae"] = float(np.mean(np.abs(base_err)))
        return out
    probs = _probability_matrix(scores)
    y = labels.astype(np.int64)
    out["accuracy"] = float((probs.argmax(axis=1) == y).mean())
    out["log_loss"] = gate_loss(True, scores, labels)
    out["ece"] = expected_calibration_error(scores, labels)
    if known.any():
        out["baseline_accuracy"] = float((baseline[known] == labels[known]).mean())
    if scores.ndim == 1 and len(np.unique(y)) == 2:
        out["auc"] = float(roc_auc_score(y, scores))
    elif scores.ndim == 2 and len(np.unique(y)) == scores.shape[1]:
        out["auc"] = float(roc_auc_score(y, probs, multi_class="ovr"))
    return out


class PrequentialWindow:
    """The last ``capacity`` out-of-sample predictions of one task's champion(s)."""

    def __init__(self, capacity: int, *, classifier: bool) -> None:
        self.capacity = capacity
        self.classifier = classifier
        self.raw: Matrix | Vector | None = None
        self.calibrated: Matrix | Vector | None = None
        self.labels: Vector = np.empty(0)
        self.baseline: Vector = np.empty(0)
        self.events_scored = 0

    def __len__(self) -> int:
        return len(self.labels)

    def add(
        self, raw: Matrix | Vector, calibrated: Matrix | Vector, labels: Vector, baseline: Vector
    ) -> None:
        if self.raw is not None and self.raw.shape[1:] != raw.shape[1:]:
            # The number of classes changed: older scores no longer line up.
            self.raw = self.calibrated = None
            self.labels = self.baseline = np.empty(0)
        keep = self.capacity
        self.raw = raw[-keep:] if self.raw is None else np.concatenate([self.raw, raw])[-keep:]
        self.calibrated = (
            calibrated[-keep:]
            if self.calibrated is None
            else np.concatenate([self.calibrated, calibrated])[-keep:]
        )
        self.labels = np.concatenate([self.labels, labels])[-keep:]
        self.baseline = np.concatenate([self.baseline, baseline])[-keep:]
        self.events_scored += len(labels)

    def metrics(self) -> dict[str, float]:
        """Live metrics over the window (calibrated probabilities), ``{}`` before any."""
        if self.calibrated is None or self.raw is None or len(self.labels) == 0:
            return {}
        out = batch_metrics(self.classifier, self.calibrated, self.labels, self.baseline)
        if self.classifier:
            out["ece_uncalibrated"] = expected_calibration_error(self.raw, self.labels)
        out["events_scored"] = float(self.events_scored)
        return out
