"""The ``stacked`` combiner: member weights fitted on the members' out-of-sample scores.

Why this meta-learner, and not a second-level GBM or an unconstrained regression:

* it is **fitted on prequential scores only** - what each member role predicted for
  events before learning them (:class:`StackWindow`, the last ``stack_window_events``).
  In-sample member scores would reward whichever member memorises most;
* it has **k + 1 parameters** (a weight per member and a bias; k <= 5), fitted by a
  bounded projected-gradient search on a few thousand rows: milliseconds, and it cannot
  overfit the window the way a flexible meta-model would;
* weights are **non-negative and bounded** (``0 <= w <= MAX_WEIGHT``): a member may be
  switched off, never turned upside down, and the raw-score combination stays a
  weighted sum, so explanations remain exact (see flywheel.ensembles);
* a small ridge pulls the weights towards the uniform ``average``: with little or
  ambiguous evidence stacking degrades to averaging instead of to noise, and when a
  concept drifts abruptly the evidence is strong and the short-window member's weight
  grows within a window of events.

The objective is the task's gate loss on the combined output: log loss (binary,
multiclass) or squared error scaled by the label variance (regression).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flywheel.ensembles import combine_raw, link
from flywheel.tasks import Objective
from trainer.encoding import Matrix, Vector

__all__ = ["MIN_STACK_ROWS", "StackWindow", "fit_stacked", "uniform_weights"]

# Fewer out-of-sample rows than this and the weights stay uniform (plain average).
MIN_STACK_ROWS = 100
MAX_WEIGHT = 4.0
MAX_BIAS = 10.0
RIDGE = 0.01
_ITERATIONS = 200
_EPS = 1e-12

Array = Matrix | Vector


def uniform_weights(k: int) -> tuple[float, ...]:
    return tuple(1.0 / k for _ in range(k))


class StackWindow:
    """The last ``capacity`` rows of every member's raw score and the label."""

    def __init__(self, members: int, capacity: int) -> None:
        self.capacity = capacity
        self.raw: list[Array] = []
        self.labels: Vector = np.empty(0)
        self._members = members

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, raw: Sequence[Array], labels: Vector) -> None:
        if len(raw) != self._members:
            raise ValueError(f"{len(raw)} member scores for {self._members} members")
        keep = self.capacity
        if self.raw and self.raw[0].shape[1:] != raw[0].shape[1:]:
            self.raw, self.labels = [], np.empty(0)  # the classes changed
        if not self.raw:
            self.raw = [r[-keep:] for r in raw]
        else:
            self.raw = [
                np.concatenate([old, new])[-keep:] for old, new in zip(self.raw, raw, strict=True)
            ]
        self.labels = np.concatenate([self.labels, labels])[-keep:]

    def clear(self) -> None:
        self.raw, self.labels = [], np.empty(0)


def _loss_and_gradient(
    objective: Objective, raw: Sequence[Array], y: Vector, w: Vector, b: float, *, scale: float
) -> tuple[float, Vector, float]:
    z = combine_raw(raw, w.tolist(), b)
    n = len(y)
    if objective is Objective.BINARY:
        p = link(objective, z)
        loss = float(-np.mean(y * np.log(p + _EPS) + (1 - y) * np.log(1 - p + _EPS)))
        g = (p - y) / n
    elif objective is Objective.MULTICLASS:
        p = link(objective, z)
        rows = np.arange(n)
        idx = y.astype(np.int64)
        loss = float(-np.mean(np.log(p[rows, idx] + _EPS)))
        onehot = np.zeros_like(p)
        onehot[rows, idx] = 1.0
        g = (p - onehot) / n
    else:
        err = z - y
        loss = float(np.mean(err**2)) / scale
        g = 2 * err / (n * scale)
    k = len(raw)
    uniform = 1.0 / k
    loss += RIDGE * float(np.sum((w - uniform) ** 2))
    grad_w = np.asarray([float(np.sum(g * r)) for r in raw]) + 2 * RIDGE * (w - uniform)
    return loss, grad_w, float(np.sum(g))


def fit_stacked(
    objective: Objective, raw: Sequence[Array], labels: Vector
) -> tuple[tuple[float, ...], float]:
    """Non-negative weights and a bias minimising the gate loss on ``raw`` (see module doc).

    Uniform weights and no bias when there are fewer than :data:`MIN_STACK_ROWS` rows
    or a classification window holds one class only.
    """
    k = len(raw)
    if len(labels) < MIN_STACK_ROWS or (
        objective in (Objective.BINARY, Objective.MULTICLASS) and len(np.unique(labels)) < 2
    ):
        return uniform_weights(k), 0.0
    # Softmax ignores a shared shift: multiclass keeps the members' own class biases.
    fit_bias = objective is not Objective.MULTICLASS
    scale = max(float(np.var(labels)), _EPS) if objective not in _CLASSIFIERS else 1.0
    w = np.full(k, 1.0 / k)
    b = 0.0
    loss, gw, gb = _loss_and_gradient(objective, raw, labels, w, b, scale=scale)
    step = 1.0
    for _ in range(_ITERATIONS):
        improved = False
        for _ in range(30):
            w_new = np.clip(w - step * gw, 0.0, MAX_WEIGHT)
            b_new = float(np.clip(b - step * gb, -MAX_BIAS, MAX_BIAS)) if fit_bias else 0.0
            new_loss, new_gw, new_gb = _loss_and_gradient(
                objective, raw, labels, w_new, b_new, scale=scale
            )
            # Armijo on the projected step: accept a sufficient decrease only.
            decrease = float(gw @ (w - w_new)) + gb * (b - b_new)
            if new_loss <= loss - 1e-4 * decrease and new_loss < loss:
                improved = True
                break
            step /= 2
        if not improved:
            break
        converged = loss - new_loss < 1e-9
        w, b, loss, gw, gb = w_new, b_new, new_loss, new_gw, new_gb
        step *= 2
        if converged:
            break
    if float(w.sum()) <= 0:
        return uniform_weights(k), 0.0  # every member switched off: fall back to average
    return tuple(round(float(x), 8) for x in w), round(b, 8)


_CLASSIFIERS = (Objective.BINARY, Objective.MULTICLASS)
