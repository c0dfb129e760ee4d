"""Scoring an ensemble version: its members' boosters and the combiner, explained exactly.

The combiner is :mod:`flywheel.ensembles` (shared with the trainer, so a row scores
the same on both sides): ``z = bias + sum(w_i * raw_i)`` over the members' LightGBM
raw scores, then the objective's link (sigmoid, softmax, identity). Calibration is
applied by :class:`~predictor.scoring.ServingModel` exactly as for one model.

Explanations (``explain=true``) use the same weights on the members' SHAP values
(LightGBM ``pred_contrib``, raw-score space)::

    contribution[f] = sum_i w_i * shap_i[f]        bias = bias + sum_i w_i * shap_i[bias]

so, as for a single model, the features plus ``bias`` sum exactly to the ensemble's raw
score ``z`` (the log-odds before calibration; per class for multiclass; the value for
regression). SHAP values are linear in the model, so these are the SHAP values of the
combined raw-score model itself, not an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from flywheel.ensembles import combine_raw, ensemble_of, link, member_texts
from flywheel.errors import ModelError
from flywheel.events import ModelVersion
from flywheel.tasks import Objective

__all__ = ["EnsembleScorer"]

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EnsembleScorer:
    objective: Objective
    names: tuple[str, ...]
    boosters: tuple[lgb.Booster, ...]
    weights: tuple[float, ...]
    bias: float

    @classmethod
    def load(cls, record: ModelVersion) -> EnsembleScorer:
        """Every member verified (hashes) and loaded from LightGBM text."""
        params = ensemble_of(record)
        boosters = []
        for name, text in member_texts(record):
            try:
                boosters.append(lgb.Booster(model_str=text))
            except lgb.basic.LightGBMError as exc:
                raise ModelError(
                    f"{record.registry_key()}: member {name} is not a LightGBM text model: {exc}"
                ) from exc
        # Every member reads the schema's columns in schema order (a refitted booster
        # names them Column_0.., so only the count can be compared).
        widths = {b.num_feature() for b in boosters}
        if widths != {len(record.feature_schema)}:
            raise ModelError(
                f"{record.registry_key()}: members have {sorted(widths)} features, "
                f"the schema {len(record.feature_schema)}"
            )
        return cls(
            objective=record.objective,
            names=tuple(m.name for m in params.members),
            boosters=tuple(boosters),
            weights=params.weights,
            bias=params.bias,
        )

    def scores(self, matrix: Matrix, threads: int) -> Matrix:
        """The uncalibrated output: P(true), class probabilities, or values."""
        raw = [
            np.asarray(b.predict(matrix, raw_score=True, num_threads=threads), dtype=np.float64)
            for b in self.boosters
        ]
        return link(self.objective, combine_raw(raw, self.weights, self.bias))

    def contributions(self, matrix: Matrix, threads: int) -> Matrix:
        """Weighted member SHAP values, laid out as one booster's ``pred_contrib``."""
        total: Matrix | None = None
        for w, booster in zip(self.weights, self.boosters, strict=True):
            contrib = np.asarray(
                booster.predict(matrix, pred_contrib=True, num_threads=threads), dtype=np.float64
            )
            total = w * contrib if total is None else total + w * contrib
        assert total is not None  # an ensemble has at least two members
        # Each block of (features + 1) columns ends with its bias: one block per class.
        width = self.boosters[0].num_feature() + 1
        total[:, width - 1 :: width] += self.bias
        return total
