"""The event-schemas section: every record Flywheel writes to Kafka, by topic.

Which model travels on which topic (and under which key) is the one hand-kept fact
here; a topic in :data:`flywheel.topics.ALL_TOPICS` without an entry stops the
generator, so a new topic cannot go undocumented.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flywheel import events as ev
from flywheel import topics
from flywheel.alerting import NotificationAttempt, NotificationDeadLetter
from flywheel.prediction_batches import PredictionBatchRequest, PredictionBatchResult
from flywheel.tasks import TaskDefinition
from stream_ingest.changelog import DEDUP_CHANGELOG
from tools.docgen.fields import FieldDoc, field_docs, model_summary
from tools.docgen.markdown import code, prose, table

__all__ = ["EVENTS", "json_schemas", "render_schemas", "render_topics"]


@dataclass(frozen=True, slots=True)
class Carried:
    model: type[BaseModel]
    topics: tuple[topics.TopicSpec, ...]
    key: str


EVENTS: tuple[Carried, ...] = (
    Carried(ev.FeedbackEvent, (topics.FEEDBACK_EVENTS,), "task"),
    Carried(ev.DeadLetter, (topics.FEEDBACK_DLQ, topics.ALERTS_DLQ), "the original record's key"),
    Carried(ev.TrainingBatch, (topics.TRAINING_BATCHES,), "task"),
    Carried(TaskDefinition, (topics.TASKS,), "task name (tombstone = deleted)"),
    Carried(ev.ModelVersion, (topics.MODELS_REGISTRY,), "`task@vN` (tombstone = retired)"),
    Carried(ev.ChampionChange, (topics.MODELS_REGISTRY,), "`task#` + 12-digit sequence"),
    Carried(ev.ModelPublished, (topics.MODELS_PUBLISHED,), "task"),
    Carried(ev.PredictionLog, (topics.PREDICTIONS_LOG,), "task"),
    Carried(PredictionBatchRequest, (topics.PREDICTIONS_REQUESTS,), "task"),
    Carried(PredictionBatchResult, (topics.PREDICTIONS_RESULTS,), "request_id"),
    Carried(ev.EntityFeatures, (topics.ONLINE_FEATURES,), "`task:entity`"),
    Carried(ev.Heartbeat, (topics.HEARTBEATS,), "`service/instance`"),
    Carried(ev.PerformanceMetric, (topics.METRICS_PERFORMANCE,), "task, else service"),
    Carried(ev.Alert, (topics.ALERTS,), "fingerprint"),
    Carried(NotificationAttempt, (topics.ALERTS_NOTIFICATIONS,), "idempotency key"),
    Carried(NotificationDeadLetter, (topics.ALERTS_DLQ,), "idempotency key"),
)

# Topics whose records are one service's private state rather than a contract.
PRIVATE = {
    topics.ALERTS_STATE.name: "the alerter's own state (alerts, silences, intents)",
    DEDUP_CHANGELOG.name: "stream-ingest's accepted event ids (dedup window)",
}
# Created by the service that owns them, not by flywheel.topics.ALL_TOPICS.
SERVICE_TOPICS = (DEDUP_CHANGELOG,)


# Descriptions for fields the code leaves to their names, by ``Model.field`` or by a
# name that means the same in every record. The code's own comments win over these.
DESCRIPTIONS = {
    "schema_version": "Contract version; readers refuse versions they do not know.",
    "task": "Task name, as applied with `flywheel tasks apply`.",
    "event_id": "Client-chosen id; a repeat of an accepted id is dropped (idempotent send).",
    "features": "Feature name to value, checked against the task's feature types.",
    "label": "Observed outcome, checked against the task's label type.",
    "prediction_id": "The `prediction_id` the predictor returned, to join outcome to prediction.",
    "entity_id": "The entity (user, session, ...) the record is about.",
    "occurred_at": "When the outcome was observed (timezone required; stored as UTC).",
    "source": "Free-text name of the sender.",
    "at": "When it happened (UTC).",
    "TrainingBatch.columns": "Feature values by name, one list per feature, row-aligned.",
    "TrainingBatch.labels": "Labels, row-aligned with `event_ids`.",
    "TrainingBatch.prediction_ids": "Prediction ids, row-aligned (null where none was sent).",
    "ModelVersion.version": "Version number, never reused within a task.",
    "ModelVersion.parent_version": "The version this one was trained on top of.",
    "ModelVersion.category_mappings": "Category strings per feature, in LightGBM code order.",
    "ModelVersion.label_classes": "Class names in score order (multiclass).",
    "ModelVersion.calibration": "Fitted probability calibration (`flywheel.calibration`).",
    "ModelVersion.strategy": "How it was trained: window, append or refit.",
    "ModelVersion.events_trained": "Feedback events learned since the task started.",
    "ModelVersion.metrics": "Live prequential (test-then-train) metrics, window size, model bytes.",
    "ChampionChange.sequence": "Position in the task's champion history; the highest wins.",
    "ChampionChange.reason": "Why: the promotion gate's verdict or the operator's text.",
    "ModelPublished.kind": "Whether the new champion came from a promotion or a rollback.",
    "PredictionLog.score": "Probability (binary), class probabilities (multiclass) or value.",
    "PredictionLog.confidence": "Calibrated probability of the predicted label (null: regression).",
    "PredictionLog.cached": "Served from the prediction cache.",
    "Heartbeat.gauges": "Service-specific numbers (queue sizes, models loaded, ...).",
    "PerformanceMetric.window": "Rolling window the value covers.",
    "Alert.fingerprint": "sha256 of name and labels (first 16 hex): same alert, same id.",
    "Alert.annotations": "Human text: summary, description, runbook link.",
    "DeadLetter.reason": "Machine-readable refusal (`broken_json`, `unknown_task`, ...).",
    "DeadLetter.error": "Human-readable message naming the field.",
    "DeadLetter.field": "The field that was refused, e.g. `features.steps`.",
    "DeadLetter.original_key": "The original record's key (for feedback: the task).",
    "DeadLetter.source_topic": "Where the original was read: topic, partition, offset.",
    "DeadLetter.original_b64": "The exact bytes received (base64), for `flywheel dlq replay`.",
    "PredictionBatchRequest.entity_ids": "Per-row entity ids for online features.",
    "PredictionBatchResult.error": "Why no predictions were made (answered, never dropped).",
}


def _described(model: type[BaseModel], docs: list[FieldDoc]) -> list[FieldDoc]:
    return [
        d
        if d.description
        else replace(
            d,
            description=DESCRIPTIONS.get(
                f"{model.__name__}.{d.name}", DESCRIPTIONS.get(d.name, "")
            ),
        )
        for d in docs
    ]


def _not_secret(_name: str, _info: FieldInfo) -> bool:
    return False


def render_topics() -> str:
    carried: dict[str, list[str]] = {}
    for entry in EVENTS:
        for spec in entry.topics:
            carried.setdefault(spec.name, []).append(f"[{entry.model.__name__}](#{_anchor(entry)})")
    missing = [s.name for s in topics.ALL_TOPICS if s.name not in carried and s.name not in PRIVATE]
    if missing:
        raise ValueError(f"tools/docgen/schemas.py: no model documented for topics {missing}")
    rows = []
    for spec in (*topics.ALL_TOPICS, *SERVICE_TOPICS):
        rows.append(
            [
                code(spec.name),
                str(spec.partitions),
                _retention(spec),
                ", ".join(carried.get(spec.name, [])) or PRIVATE[spec.name],
                spec.description,
            ]
        )
    return table(["topic", "partitions", "kept", "records", "what"], rows)


def _retention(spec: topics.TopicSpec) -> str:
    if spec.compacted:
        return "compacted"
    if spec.retention_ms is None:
        return "broker default"
    return f"{spec.retention_ms / 86_400_000:g} d"


def _anchor(entry: Carried) -> str:
    return "schema-" + entry.model.__name__.lower()


def render_schemas() -> str:
    """One collapsed block per record: its fields, then the models nested in it."""
    out: list[str] = []
    nested_done: set[type[BaseModel]] = set()
    for entry in EVENTS:
        model = entry.model
        where = ", ".join(f"<code>{s.name}</code>" for s in entry.topics)
        summary = f"<b>{model.__name__}</b> on {where}, key {_html(entry.key)}"
        if doc := model_summary(model):
            summary += f": {_html(doc)}"
        out.append(f'<a id="{_anchor(entry)}"></a>\n<details><summary>{summary}</summary>\n')
        out.append(_fields_table(_described(model, field_docs(model, secret=_not_secret))))
        pending = _nested_models(model)
        while pending:
            nested = pending.pop(0)
            if nested in nested_done:
                continue
            nested_done.add(nested)
            pending += _nested_models(nested)
            doc = model_summary(nested)
            out.append(f"`{nested.__name__}`" + (f": {prose(doc)}" if doc else "") + "\n")
            out.append(_fields_table(_described(nested, field_docs(nested, secret=_not_secret))))
        out.append("</details>\n")
    return "\n".join(out)


def _html(text: str) -> str:
    """Markdown-ish docstring text for an HTML ``<summary>``: escaped, code spans kept."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"``?([^`]+)``?", r"<code>\1</code>", escaped)


def _fields_table(docs: list[FieldDoc]) -> str:
    rows = [[code(d.name), d.type, d.default, d.constraints, d.description] for d in docs]
    return table(["field", "type", "default", "constraints", "description"], rows)


def _nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """Models used directly inside ``model``'s fields."""
    found: list[type[BaseModel]] = []

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
            return
        for arg in getattr(annotation, "__args__", ()):
            walk(arg)

    for info in model.model_fields.values():
        walk(info.annotation)
    return found


def json_schemas() -> dict[str, str]:
    """``docs/schemas/<Model>.json``: the full JSON Schema of every record, by file name."""
    return {
        f"{entry.model.__name__}.json": json.dumps(
            entry.model.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for entry in EVENTS
    }
