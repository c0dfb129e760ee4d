"""Typed results of ``predict`` / ``predict_many`` and the fallback a caller supplies.

The predictor may add fields to its answers (ARCHITECTURE.md: fields are added, never
renamed); unknown fields are kept on the model rather than refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict

__all__ = ["Fallback", "FallbackValue", "Features", "PredictionBatch", "PredictionResult"]

Features: TypeAlias = Mapping[str, Any]


class PredictionResult(BaseModel):
    """One prediction. ``fallback=True`` means the caller's fallback produced it.

    ``prediction_id`` is None only for fallbacks: nothing was logged to join with.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    prediction_id: str | None = None
    task: str | None = None
    model_version: int | None = None
    score: float | list[float] | None = None
    probability: float | list[float] | None = None
    label: bool | str | int | None = None
    confidence: float | None = None
    contributions: dict[str, Any] | None = None
    unknown_categories: list[str] | None = None
    cached: bool = False
    fallback: bool = False


class PredictionBatch(BaseModel):
    """``predict_many``: one :class:`PredictionResult` per row, in order."""

    model_config = ConfigDict(extra="allow", frozen=True)

    task: str
    model_version: int | None = None
    predictions: list[PredictionResult]
    fallback: bool = False


#: What a fallback may produce: a ready result, a score, or the result's fields.
FallbackValue: TypeAlias = PredictionResult | float | Mapping[str, Any]
#: A fixed value, or a function of the row's features computing one.
Fallback: TypeAlias = FallbackValue | Callable[[Features], FallbackValue]


def resolve_fallback(fallback: Fallback, task: str, features: Features) -> PredictionResult:
    """Turn the caller's fallback into a result marked ``fallback=True``."""
    value = fallback(features) if callable(fallback) else fallback
    if isinstance(value, PredictionResult):
        return value.model_copy(update={"fallback": True, "task": value.task or task})
    if isinstance(value, bool):
        return PredictionResult(task=task, label=value, fallback=True)
    if isinstance(value, int | float):
        return PredictionResult(task=task, score=float(value), fallback=True)
    return PredictionResult.model_validate({"task": task, **value, "fallback": True})
