"""The hot path: a predict request from checked features to a JSON-ready answer.

No blocking I/O happens here: scoring is in-process (~20 µs per row), Redis is
consulted only while the gate says it answers, and the prediction log is a queue
append. Refusals are :class:`Refused` with a status, a message and the field.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flywheel.errors import EventValidationError
from flywheel.events import PredictionLog
from predictor.auth import ApiKeyring
from predictor.cache import PredictionCache, RedisGate, features_digest
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.online import EntityStore, OnlineFeaturesUnavailable
from predictor.prediction_log import PredictionLogSender
from predictor.scoring import ServingModel
from predictor.store import ModelStore

__all__ = ["Predictor", "Refused", "RequestCounts", "heartbeat_gauges"]


def _prediction_id() -> str:
    # What uuid4().hex is made of (16 random bytes, 32 hex digits), without the UUID.
    return os.urandom(16).hex()


class Refused(Exception):
    """A request the predictor will not answer, with the HTTP status and the field."""

    def __init__(
        self, status: int, detail: str, field: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"detail": detail, "field": field, "reason": reason}


@dataclass
class RequestCounts:
    """Prediction requests answered by this process (HTTP and batch), for heartbeats.

    An error is a request the predictor failed, not one it refused: a 5xx, or a
    batch whose prediction failed. Refusals of bad input (4xx) are the caller's.
    """

    requests: int = 0
    errors: int = 0

    def count(self, status: int) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1


@dataclass
class Predictor:
    store: ModelStore
    cache: PredictionCache
    entities: EntityStore
    log: PredictionLogSender
    keyring: ApiKeyring
    gate: RedisGate
    metrics: PredictorMetrics
    keys: RedisKeys
    max_rows: int
    # Redis is consulted only for predictions dearer than this (explanations always):
    # a round trip that costs more than scoring would make every request slower.
    cache_min_row_cost_us: float = 0.0
    started: bool = False
    counts: RequestCounts = field(default_factory=RequestCounts)

    def model_for(self, task: str, api_key: str | None) -> ServingModel:
        if self.keyring.enabled:
            self.keyring.authorize(api_key, task)
        model = self.store.get(task)
        if model is None:
            if not self.started:
                # Still loading champions (a replica that just restarted): "no model"
                # would be a lie; 503 sends the client to another replica.
                raise Refused(503, "predictor is starting: models are loading", reason="starting")
            if self.store.is_retired(task):
                raise Refused(
                    404,
                    f"task {task!r} was deleted; apply it again to serve it (flywheel tasks apply)",
                    reason="task_deleted",
                )
            raise Refused(404, f"no model is served for task {task!r} yet", reason="no_model")
        return model

    async def predict_one(
        self,
        model: ServingModel,
        features: dict[str, Any],
        *,
        entity_id: str | None,
        explain: bool,
        started: float,
    ) -> dict[str, Any]:
        if entity_id is not None:
            features = await self._with_entity(model, entity_id, features)
        self._check(model, features, "features")
        key = None
        result = None
        if self.cache.enabled and (explain or model.row_cost_us >= self.cache_min_row_cost_us):
            digest = features_digest(features)
            key = self.keys.prediction(model.task, model.version, explain, digest)
            result = await self.cache.get(key)
        cached = result is not None
        if result is None:
            result = model.predict([features], explain=explain)[0]
            if key is not None:
                self.cache.put(key, result)
        self._count_unknown(model, result)
        self.metrics.scored(model.task)
        pid = _prediction_id()
        self._log(model, pid, result, started, cached=cached, entity_id=entity_id)
        return {
            "prediction_id": pid,
            "task": model.task,
            "model_version": model.version,
            **result,
            "cached": cached,
        }

    async def predict_rows(
        self,
        model: ServingModel,
        rows: list[dict[str, Any]],
        *,
        entity_id: str | None,
        explain: bool,
        started: float,
    ) -> dict[str, Any]:
        if len(rows) > self.max_rows:
            raise Refused(
                422, f"rows: at most {self.max_rows} rows per request", "rows", "too_many_rows"
            )
        if entity_id is not None:
            rows = [await self._with_entity(model, entity_id, row) for row in rows]
        for i, row in enumerate(rows):
            self._check(model, row, f"rows.{i}")
        predictions = []
        for result in model.predict(rows, explain=explain):
            self._count_unknown(model, result)
            pid = _prediction_id()
            self._log(model, pid, result, started, cached=False, entity_id=entity_id)
            predictions.append({"prediction_id": pid, **result})
        self.metrics.scored(model.task, len(rows))
        return {"task": model.task, "model_version": model.version, "predictions": predictions}

    @staticmethod
    def _check(model: ServingModel, features: dict[str, Any], prefix: str) -> None:
        try:
            model.check(features, prefix)
        except EventValidationError as exc:
            raise Refused(422, str(exc), exc.field, exc.reason) from exc

    async def _with_entity(
        self, model: ServingModel, entity_id: str, features: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            stored = await self.entities.get(model.task, entity_id)
        except OnlineFeaturesUnavailable as exc:
            raise Refused(
                503, str(exc), field="entity_id", reason="online_features_unavailable"
            ) from exc
        known = model.definition.feature_names
        # Stored features the model no longer has are ignored; request values win,
        # since the caller's view is the freshest.
        merged = {k: v for k, v in stored.items() if k in known}
        merged.update(features)
        return merged

    def _log(
        self,
        model: ServingModel,
        pid: str,
        result: dict[str, Any],
        started: float,
        *,
        cached: bool,
        entity_id: str | None,
    ) -> None:
        # model_construct: every field is already valid, and this runs once per row.
        self.log.submit(
            # Every field given, so no default is copied or computed field by field.
            PredictionLog.model_construct(
                schema_version=1,
                prediction_id=pid,
                task=model.task,
                model_version=model.version,
                score=result["score"],
                confidence=result["confidence"],
                latency_ms=(time.perf_counter() - started) * 1000,
                cached=cached,
                entity_id=entity_id,
                served_at=datetime.now(UTC),
            )
        )

    def _count_unknown(self, model: ServingModel, result: dict[str, Any]) -> None:
        for name in result.get("unknown_categories", ()):
            self.metrics.unknown_categories.labels(model.task, name).inc()


def heartbeat_gauges(predictor: Predictor) -> dict[str, float]:
    """The predictor's heartbeat gauges (``flywheel.heartbeat``), from its own state."""
    sender = predictor.log
    return {
        "requests_total": float(predictor.counts.requests),
        "request_errors_total": float(predictor.counts.errors),
        "models_loaded": float(len(predictor.store.tasks())),
        "prediction_log_queue_depth": float(sender.pending),
        "prediction_log_overflow_total": float(sender.overflowed),
        "prediction_log_dropped_total": float(sender.dropped),
    }
