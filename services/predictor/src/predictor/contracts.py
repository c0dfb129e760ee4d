"""The predictor's HTTP shapes (ARCHITECTURE.md, "Prediction over HTTP").

Fields may be added; none renamed. Responses are serialised straight to JSON bytes
on the hot path; these models document them in the OpenAPI schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.events import EventId
from flywheel.tasks import FeatureName, FeatureSpec, FeatureValue, Objective

__all__ = [
    "ErrorBody",
    "PredictRequest",
    "Prediction",
    "PredictionRows",
    "ReadinessBody",
    "TaskDetail",
    "TaskSummary",
]

Features = dict[FeatureName, FeatureValue]


class PredictRequest(BaseModel):
    """One row (``features``) or many (``rows``); ``entity_id`` joins online features."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    features: Features | None = Field(default=None, max_length=256)
    rows: list[Features] | None = Field(default=None, min_length=1, max_length=100_000)
    entity_id: EventId | None = None
    explain: bool = False

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if (self.features is None) == (self.rows is None):
            raise ValueError("send exactly one of features (one row) or rows (many)")
        return self


class Prediction(BaseModel):
    prediction_id: str = Field(description="Send it back with the feedback for this row.")
    task: str | None = Field(default=None, description="Present on single-row responses.")
    model_version: int | None = Field(default=None, description="Present on single-row responses.")
    score: float | list[float] = Field(
        description="Model output: P(true) for binary, class probabilities for multiclass, "
        "the value for regression/ranking."
    )
    probability: float | list[float] | None = Field(
        default=None, description="Calibrated probability (classification)."
    )
    label: bool | str | int | None = Field(default=None, description="Predicted label.")
    confidence: float | None = Field(
        description="Calibrated probability of the predicted label; null for regression."
    )
    contributions: dict[str, Any] | None = Field(
        default=None,
        description="SHAP values per feature plus `bias` in raw-score space (explain=true).",
    )
    unknown_categories: list[str] | None = Field(
        default=None, description="Category features whose value the model never saw."
    )
    cached: bool = False


class PredictionRows(BaseModel):
    task: str
    model_version: int
    predictions: list[Prediction]


class TaskSummary(BaseModel):
    task: str
    model_version: int
    objective: Objective
    events_trained: int
    trees: int


class TaskDetail(TaskSummary):
    model_sha256: str
    created_at: datetime
    strategy: str
    metrics: dict[str, float] = Field(description="Live (prequential) metrics from the registry.")
    feature_schema: list[FeatureSpec]
    category_mappings: dict[str, list[str]]
    label_classes: list[str]
    calibration: str


class ErrorBody(BaseModel):
    detail: str
    field: str | None = None
    reason: str | None = None


class ReadinessBody(BaseModel):
    status: str = Field(description="ready, degraded (serving without Redis) or starting")
    redis: bool
    models: int
