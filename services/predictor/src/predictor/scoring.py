"""A servable model: a verified LightGBM booster plus everything needed to feed it.

An ensemble version (``model_format`` ``lightgbm-ensemble``) is served by the same
class: its members' boosters and combiner live in
:class:`~predictor.ensemble_scoring.EnsembleScorer`, and everything else (checking,
encoding, calibration, the response) is shared, so a hot swap between a single model
and an ensemble is an ordinary swap.

:class:`ServingModel` is built once per model version (off the hot path) from a
:class:`~flywheel.events.ModelVersion`: the text is checked against its sha256, the
booster is loaded from LightGBM's text format (never a pickle) and warmed. Feature
order and category codes come from the model itself, so every client gets exactly
the encoding the trainer used, and features are checked with the same
:meth:`TaskDefinition.check_features` that stream-ingest applies to feedback.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from flywheel.calibration import Calibrator, calibrator_from
from flywheel.encoding import FeatureEncoding, Matrix, codes_from
from flywheel.errors import ModelError, ModelIntegrityError
from flywheel.events import ModelVersion
from flywheel.tasks import LabelSpec, LabelType, Objective, TaskDefinition
from predictor.ensemble_scoring import EnsembleScorer
from predictor.single_row import SingleRowScorer

__all__ = ["ServingModel"]

# Below this many rows LightGBM runs on the calling thread: starting OpenMP's team
# costs several times what scoring one row does (~15 µs). Larger batches use every core.
_SINGLE_THREAD_ROWS = 64


def _threads(matrix: Matrix) -> int:
    # 0: LightGBM's default (all cores).
    return 1 if len(matrix) < _SINGLE_THREAD_ROWS else 0


def _label_spec(version: ModelVersion) -> LabelSpec:
    # Only the features matter for checking a request; the label spec just has to be
    # one the objective accepts so the definition is valid.
    if version.objective is Objective.BINARY:
        return LabelSpec(type=LabelType.BOOL)
    if version.objective is Objective.MULTICLASS:
        if len(version.label_classes) >= 2:
            return LabelSpec(type=LabelType.CATEGORY, classes=tuple(version.label_classes))
        return LabelSpec(type=LabelType.INT)
    return LabelSpec(type=LabelType.FLOAT)


@dataclass(slots=True)
class ServingModel:
    record: ModelVersion
    # The model's booster; for an ensemble its first member's (the column order).
    booster: lgb.Booster
    definition: TaskDefinition
    calibrate: Calibrator
    # Position i of the booster's input is feature columns[i].
    columns: tuple[str, ...]
    # The trainer's encoding (shared code), with this model's column order and codes.
    encoding: FeatureEncoding
    # Measured at warm-up: what scoring one row costs, so callers can tell whether a
    # remote cache lookup would save time or cost it.
    row_cost_us: float = 0.0
    # Set for an ensemble version: scoring and explanations go through its members.
    ensemble: EnsembleScorer | None = None
    # A single model's one-row requests skip Booster.predict's per-call set-up.
    single_row: SingleRowScorer | None = None

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def version(self) -> int:
        return self.record.version

    @classmethod
    def load(cls, record: ModelVersion) -> ServingModel:
        """Verify, load and warm ``record``; :class:`ModelError` if it cannot be served."""
        ensemble = EnsembleScorer.load(record) if record.is_ensemble else None
        booster = _booster(record) if ensemble is None else ensemble.boosters[0]
        specs = {spec.name: spec for spec in record.feature_schema}
        names = list(booster.feature_name())
        if len(names) != len(specs):
            raise ModelError(
                f"{record.registry_key()}: booster has {len(names)} features, "
                f"the schema {len(specs)}"
            )
        if set(names) != set(specs):
            # Boosters trained from bare arrays name columns Column_0..; then the
            # schema order is the column order.
            names = [spec.name for spec in record.feature_schema]
        for name, categories in record.category_mappings.items():
            if name not in specs:
                raise ModelError(f"category_mappings.{name}: not a feature of the model")
            if len(set(categories)) != len(categories):
                raise ModelError(f"category_mappings.{name}: duplicate categories")
        try:
            definition = TaskDefinition(
                name=record.task,
                objective=record.objective,
                label=_label_spec(record),
                features=record.feature_schema,
            )
        except ValueError as exc:
            raise ModelError(f"{record.registry_key()}: feature schema: {exc}") from exc
        model = cls(
            record=record,
            booster=booster,
            definition=definition,
            calibrate=calibrator_from(record.calibration),
            columns=tuple(names),
            encoding=FeatureEncoding(
                [(n, specs[n].type) for n in names], codes_from(record.category_mappings)
            ),
            ensemble=ensemble,
            single_row=SingleRowScorer(booster) if ensemble is None else None,
        )
        model.warm()
        return model

    def warm(self) -> None:
        """Run the booster once per path so the first real request pays no set-up cost."""
        row = np.full((1, len(self.columns)), np.nan)
        self._scores(row)
        self._contrib(row)
        timings = []
        for _ in range(7):
            started = time.perf_counter()
            self._scores(row)
            timings.append(time.perf_counter() - started)
        self.row_cost_us = statistics.median(timings) * 1e6

    def check(self, features: dict[str, Any], prefix: str = "features") -> None:
        """Raise :class:`EventValidationError` naming the first feature that is wrong."""
        self.definition.check_features(features, prefix=prefix)

    def encode(self, rows: list[dict[str, Any]]) -> tuple[Matrix, list[list[str]]]:
        """Checked rows -> the booster's input matrix, plus unknown categories per row.

        A category the model never saw takes LightGBM's missing branch; the response
        says so rather than hiding it.
        """
        return self.encoding.encode_rows(rows)

    def _scores(self, matrix: Matrix) -> Matrix:
        if self.ensemble is not None:
            return self.ensemble.scores(matrix, _threads(matrix))
        if self.single_row is not None and len(matrix) == 1:
            return self.single_row.scores(matrix)
        out: Matrix = np.asarray(
            self.booster.predict(matrix, num_threads=_threads(matrix)), dtype=np.float64
        )
        return out

    def predict(self, rows: list[dict[str, Any]], *, explain: bool = False) -> list[dict[str, Any]]:
        """Score checked rows; one JSON-ready dict per row (score, confidence, label, …)."""
        matrix, unknown = self.encoding.encode_rows(rows)
        raw = self._scores(matrix)
        objective = self.record.objective
        results: list[dict[str, Any]] = []
        if objective is Objective.BINARY:
            calibrated = self.calibrate(raw)
            for p, cp in zip(raw.tolist(), calibrated.tolist(), strict=True):
                positive = cp >= 0.5
                results.append(
                    {
                        "score": p,
                        "probability": cp,
                        "label": positive,
                        "confidence": cp if positive else 1.0 - cp,
                    }
                )
        elif objective is Objective.MULTICLASS:
            calibrated = self.calibrate(raw)
            classes = self.record.label_classes
            for probs, cprobs in zip(raw.tolist(), calibrated.tolist(), strict=True):
                best = int(np.argmax(cprobs))
                results.append(
                    {
                        "score": probs,
                        "probability": cprobs,
                        "label": classes[best] if best < len(classes) else best,
                        "confidence": cprobs[best],
                    }
                )
        else:
            # Regression and ranking scores have no probability to calibrate.
            results = [{"score": s, "confidence": None} for s in raw.tolist()]
        for result, row_unknown in zip(results, unknown, strict=True):
            if row_unknown:
                result["unknown_categories"] = row_unknown
        if explain:
            for result, contributions in zip(results, self.contributions(matrix), strict=True):
                result["contributions"] = contributions
        return results

    def _contrib(self, matrix: Matrix) -> Matrix:
        if self.ensemble is not None:
            return self.ensemble.contributions(matrix, _threads(matrix))
        out: Matrix = np.asarray(
            self.booster.predict(matrix, pred_contrib=True, num_threads=_threads(matrix)),
            dtype=np.float64,
        )
        return out

    def contributions(self, matrix: Matrix) -> list[dict[str, Any]]:
        """SHAP values per feature (LightGBM ``pred_contrib``) in raw-score space.

        ``bias`` is the expected raw score; features + bias sum to the raw score.
        Multiclass gives one such mapping per class. For an ensemble: the members' SHAP
        values weighted as the combiner weights their raw scores, so they sum to the
        ensemble's raw score (see :mod:`predictor.ensemble_scoring`).
        """
        contrib = self._contrib(matrix)
        width = len(self.columns) + 1
        names = [*self.columns, "bias"]
        out: list[dict[str, Any]] = []
        for row in contrib.tolist():
            if len(row) == width:
                out.append(dict(zip(names, row, strict=True)))
            else:
                classes = self.record.label_classes or [str(i) for i in range(len(row) // width)]
                out.append(
                    {
                        str(cls): dict(zip(names, row[k * width : (k + 1) * width], strict=True))
                        for k, cls in enumerate(classes)
                    }
                )
        return out


def _booster(record: ModelVersion) -> lgb.Booster:
    """A single model's booster, its text checked against the registry's sha256."""
    actual = ModelVersion.hash_text(record.model_text)
    if actual != record.model_sha256:
        raise ModelIntegrityError(
            f"{record.registry_key()}: model text hashes to {actual[:12]}…, "
            f"the registry says {record.model_sha256[:12]}…"
        )
    try:
        return lgb.Booster(model_str=record.model_text)
    except lgb.basic.LightGBMError as exc:
        raise ModelError(f"{record.registry_key()}: not a LightGBM text model: {exc}") from exc
