"""Offline batch predictions over Kafka: ``predictions.requests`` -> ``predictions.results``.

A client (or the SDK) sends a :class:`PredictionBatchRequest` keyed by task; a
predictor answers each one with exactly one :class:`PredictionBatchResult` carrying
the same ``request_id``: the predictions, or the reason none could be made (a
refused request is answered, never dropped). A record that cannot even be decoded
is answered too, with ``request_id`` = ``topic:partition:offset`` of the record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flywheel.events import EventId, UtcDatetime, utc_now
from flywheel.tasks import FeatureName, FeatureValue, TaskName

__all__ = ["MAX_BATCH_ROWS", "BatchError", "PredictionBatchRequest", "PredictionBatchResult"]

MAX_BATCH_ROWS = 10_000


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PredictionBatchRequest(_Record):
    """Rows to score with the task's champion (``predictions.requests``, key = task)."""

    schema_version: Literal[1] = 1
    request_id: EventId
    task: TaskName
    rows: list[dict[FeatureName, FeatureValue]] = Field(min_length=1, max_length=MAX_BATCH_ROWS)
    # Optional per-row entity ids: online features are joined like on the HTTP path.
    entity_ids: list[EventId | None] | None = None
    explain: bool = False
    requested_at: UtcDatetime = Field(default_factory=utc_now)


class BatchError(_Record):
    reason: str = Field(max_length=64)
    message: str = Field(max_length=2_000)
    field: str | None = Field(default=None, max_length=256)


class PredictionBatchResult(_Record):
    """The answer to one request (``predictions.results``, key = request_id)."""

    schema_version: Literal[1] = 1
    request_id: str = Field(max_length=512)
    task: str = Field(max_length=128)
    model_version: int | None = None
    # One entry per request row, in order: prediction_id, score, confidence, ...
    predictions: list[dict[str, Any]] = Field(default_factory=list)
    error: BatchError | None = None
    answered_at: UtcDatetime = Field(default_factory=utc_now)
