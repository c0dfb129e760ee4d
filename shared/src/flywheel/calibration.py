"""Applying confidence calibration, as stored in ``ModelVersion.calibration``.

The trainer fits the parameters and the predictor serves them; both apply them
through :func:`calibrator_from`, so a probability the trainer scored is the
probability a client gets. Accepted shapes (anything else refuses the model at load,
so a champion is never served with calibration it cannot apply):

* ``{}`` or ``{"method": "none"}``                    - identity;
* ``{"method": "platt", "a": A, "b": B}``             - ``sigmoid(A * logit(p) + B)``;
* ``{"method": "isotonic", "x": [...], "y": [...]}``  - piecewise-linear, x ascending;
* ``{"method": "temperature", "temperature": T}``     - multiclass: softmax(log(p) / T).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from flywheel.errors import ModelError

__all__ = ["Calibrator", "calibrator_from", "logit", "softmax_with_temperature"]

Probabilities = npt.NDArray[np.float64]
Calibrator = Callable[[Probabilities], Probabilities]

_EPS = 1e-12
# Platt maps are fitted on logits clipped here; applying them must clip the same way.
_LOGIT_CLIP = 1e-7


def logit(p: Probabilities) -> Probabilities:
    """log(p / (1 - p)), finite for p in [0, 1]."""
    q = np.clip(p, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    out: Probabilities = np.log(q / (1 - q))
    return out


def softmax_with_temperature(p: Probabilities, t: float) -> Probabilities:
    """Rows of class probabilities sharpened (t < 1) or softened (t > 1)."""
    logits = np.log(np.clip(p, _EPS, 1.0)) / t
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    out: Probabilities = e / e.sum(axis=-1, keepdims=True)
    return out


def _identity(p: Probabilities) -> Probabilities:
    return p


def _platt(a: float, b: float) -> Calibrator:
    def apply(p: Probabilities) -> Probabilities:
        out: Probabilities = 1.0 / (1.0 + np.exp(-(a * logit(p) + b)))
        return out

    return apply


def _isotonic(x: Probabilities, y: Probabilities) -> Calibrator:
    def apply(p: Probabilities) -> Probabilities:
        out: Probabilities = np.interp(p, x, y)
        return out

    return apply


def _temperature(t: float) -> Calibrator:
    def apply(p: Probabilities) -> Probabilities:
        return softmax_with_temperature(p, t)

    return apply


def _number(params: dict[str, Any], key: str) -> float:
    value = params.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ModelError(f"calibration.{key}: expected a finite number, got {value!r:.40}")
    return float(value)


def calibrator_from(params: dict[str, Any]) -> Calibrator:
    """The calibration function ``params`` describe; :class:`ModelError` if unusable."""
    method = params.get("method", "none") if params else "none"
    if method == "none":
        return _identity
    if method == "platt":
        return _platt(_number(params, "a"), _number(params, "b"))
    if method == "temperature":
        t = _number(params, "temperature")
        if t <= 0:
            raise ModelError("calibration.temperature: must be > 0")
        return _temperature(t)
    if method == "isotonic":
        try:
            x = np.asarray(params["x"], dtype=np.float64)
            y = np.asarray(params["y"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"calibration: isotonic needs numeric x and y ({exc})") from exc
        if x.ndim != 1 or x.shape != y.shape or x.size < 2:
            raise ModelError("calibration: isotonic x and y must be equal-length lists (>= 2)")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.diff(x) < 0):
            raise ModelError("calibration: isotonic x must be finite and ascending")
        return _isotonic(x, y)
    raise ModelError(f"calibration.method: unknown method {method!r:.40}")
