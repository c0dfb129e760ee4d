"""Every event that crosses Kafka, as pydantic v2 models.

Each model carries ``schema_version``; readers accept the versions they know and
refuse the rest with a clear error. Fields may be added, never renamed (the
contracts in ARCHITECTURE.md). Numbers must be finite, strings and collections are
bounded, timestamps are timezone-aware and normalised to UTC.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from flywheel.tasks import (
    FeatureName,
    FeatureSpec,
    FeatureValue,
    LabelValue,
    MemberName,
    Objective,
    TaskName,
    omit_if_absent,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "Alert",
    "AlertSeverity",
    "AlertState",
    "ChampionChange",
    "DeadLetter",
    "EnsembleMemberRecord",
    "EnsembleParameters",
    "EntityFeatures",
    "EventId",
    "FeedbackEvent",
    "Heartbeat",
    "ModelPublished",
    "ModelVersion",
    "PerformanceMetric",
    "PredictionLog",
    "TrainingBatch",
    "alert_fingerprint",
    "utc_now",
]

MAX_FEATURES_PER_EVENT = 256
MAX_BATCH_EVENTS = 100_000
MAX_LABELS = 64

EventId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")]
OptionalId = Annotated[str | None, Field(default=None, pattern=r"^[A-Za-z0-9._:/-]{1,128}$")]
ShortText = Annotated[str, Field(max_length=128)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    # Events are immutable facts; unknown fields are kept out so a typo is an error.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FeedbackEvent(_Event):
    """Features a client saw and the outcome it observed (``feedback.events``, key = task)."""

    schema_version: Literal[1] = 1
    event_id: EventId
    task: TaskName
    features: dict[FeatureName, FeatureValue] = Field(max_length=MAX_FEATURES_PER_EVENT)
    label: LabelValue
    prediction_id: OptionalId = None
    entity_id: OptionalId = None
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    source: ShortText | None = None


class TrainingBatch(_Event):
    """A validated, de-duplicated batch of one task's events, in columns (compact on the wire).

    Row ``i`` is ``event_ids[i]``, ``{name: columns[name][i]}``, ``labels[i]``.
    """

    schema_version: Literal[1] = 1
    batch_id: EventId
    task: TaskName
    created_at: UtcDatetime = Field(default_factory=utc_now)
    event_ids: list[EventId] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)
    columns: dict[FeatureName, list[FeatureValue]]
    labels: list[LabelValue]
    prediction_ids: list[str | None] = Field(default_factory=list)
    # Publish time of the oldest event in the batch: freshness is measured from it.
    oldest_event_at: UtcDatetime | None = None

    def __len__(self) -> int:
        return len(self.event_ids)

    def rows(self) -> list[dict[str, FeatureValue]]:
        names = list(self.columns)
        cols = [self.columns[n] for n in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*cols, strict=True)]


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class EnsembleMemberRecord(_Event):
    """One member of an ensemble version: its LightGBM text is in the version's model_text."""

    name: MemberName
    model_sha256: Sha256
    strategy: ShortText = "window"
    trees: int = Field(ge=0)
    events_trained: int = Field(ge=0)
    window_events: int = Field(ge=0)
    # The member's own calibration (its prequential numbers and gate use it); the
    # ensemble's output is calibrated by ModelVersion.calibration.
    calibration: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[LabelName, float] = Field(default_factory=dict, max_length=MAX_LABELS)


class EnsembleParameters(_Event):
    """How an ensemble version combines its members (see flywheel.ensembles).

    Raw score = ``bias + sum(weights[i] * member_i raw score)`` (log-odds, class
    logits or values); then the objective's link and ``ModelVersion.calibration``.
    """

    combine: Literal["average", "stacked"]
    members: tuple[EnsembleMemberRecord, ...] = Field(min_length=2, max_length=5)
    weights: tuple[float, ...] = Field(min_length=2, max_length=5)
    bias: float = 0.0

    @model_validator(mode="after")
    def _coherent(self) -> EnsembleParameters:
        if len(self.weights) != len(self.members):
            raise ValueError(
                f"weights: {len(self.weights)} weights for {len(self.members)} members"
            )
        if any(w < 0 for w in self.weights):
            raise ValueError("weights: must be >= 0")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError("members: duplicate member names")
        return self


class ModelVersion(_Event):
    """One trained model version (``models.registry``, key = ``task@vN``; compacted, kept).

    An ensemble version (``model_format`` ``lightgbm-ensemble``) holds its members'
    LightGBM texts in ``model_text`` as one JSON document (see flywheel.ensembles) and
    how they combine in ``ensemble``; the sha256 covers the whole document.
    """

    schema_version: Literal[1] = 1
    kind: Literal["version"] = "version"
    task: TaskName
    version: int = Field(ge=1)
    parent_version: int | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    objective: Objective
    model_format: Literal["lightgbm-text", "lightgbm-ensemble"] = "lightgbm-text"
    # LightGBM's own text format; never a pickle. Checked against model_sha256 on load.
    model_text: str = Field(max_length=16_000_000)
    model_sha256: Sha256
    feature_schema: tuple[FeatureSpec, ...]
    category_mappings: dict[FeatureName, list[str]] = Field(default_factory=dict)
    label_classes: list[str] = Field(default_factory=list)
    calibration: dict[str, Any] = Field(default_factory=dict)
    strategy: ShortText = "window"
    trees: int = Field(ge=0)
    events_trained: int = Field(ge=0)
    metrics: dict[LabelName, float] = Field(default_factory=dict, max_length=MAX_LABELS)
    # Only for model_format "lightgbm-ensemble"; absent (not even null) for one model.
    ensemble: EnsembleParameters | None = None

    @model_validator(mode="after")
    def _format_matches(self) -> ModelVersion:
        if (self.model_format == "lightgbm-ensemble") != (self.ensemble is not None):
            raise ValueError("ensemble: required exactly when model_format is lightgbm-ensemble")
        return self

    @model_serializer(mode="wrap")
    def _omit_absent_ensemble(self, handler: SerializerFunctionWrapHandler) -> Any:
        return omit_if_absent(handler(self), "ensemble", self.ensemble)

    @property
    def is_ensemble(self) -> bool:
        return self.ensemble is not None

    def registry_key(self) -> str:
        return f"{self.task}@v{self.version}"

    @staticmethod
    def hash_text(model_text: str) -> str:
        return hashlib.sha256(model_text.encode("utf-8")).hexdigest()


class ChampionChange(_Event):
    """A promotion or rollback (``models.registry``, key = ``task#seq``: history is kept)."""

    schema_version: Literal[1] = 1
    kind: Literal["promotion", "rollback"]
    task: TaskName
    sequence: int = Field(ge=1)
    version: int = Field(ge=1)
    previous_version: int | None = None
    reason: str = Field(max_length=1_000)
    metrics: dict[LabelName, float] = Field(default_factory=dict, max_length=MAX_LABELS)
    at: UtcDatetime = Field(default_factory=utc_now)

    def registry_key(self) -> str:
        return f"{self.task}#{self.sequence:012d}"


class ModelPublished(_Event):
    """A new champion for a task (``models.published``, key = task)."""

    schema_version: Literal[1] = 1
    task: TaskName
    version: int = Field(ge=1)
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    kind: Literal["promotion", "rollback"] = "promotion"
    published_at: UtcDatetime = Field(default_factory=utc_now)
    # Oldest feedback event that this version learned from: freshness = published - it.
    trained_through: UtcDatetime | None = None


class PredictionLog(_Event):
    """One prediction served (``predictions.log``, key = task)."""

    schema_version: Literal[1] = 1
    prediction_id: EventId
    task: TaskName
    model_version: int = Field(ge=0)
    score: float | list[float]
    confidence: float | None = Field(default=None, ge=0, le=1)
    latency_ms: float = Field(ge=0)
    cached: bool = False
    entity_id: OptionalId = None
    served_at: UtcDatetime = Field(default_factory=utc_now)


class EntityFeatures(_Event):
    """Online features of an entity (``features.online``, key = ``task:entity``)."""

    schema_version: Literal[1] = 1
    task: TaskName
    entity_id: EventId
    features: dict[FeatureName, FeatureValue] = Field(max_length=MAX_FEATURES_PER_EVENT)
    at: UtcDatetime = Field(default_factory=utc_now)


class Heartbeat(_Event):
    """A service's health (``services.heartbeats``, key = service/instance)."""

    schema_version: Literal[1] = 1
    service: ShortText
    instance: ShortText
    at: UtcDatetime = Field(default_factory=utc_now)
    rss_bytes: int = Field(ge=0)
    cpu_percent: float = Field(ge=0)
    gauges: dict[LabelName, float] = Field(default_factory=dict, max_length=MAX_LABELS)


class PerformanceMetric(_Event):
    """A rolling-window measurement from the optimizer (``metrics.performance``)."""

    schema_version: Literal[1] = 1
    name: LabelName
    value: float
    window: Literal["1m", "5m", "1h"]
    task: TaskName | None = None
    service: ShortText | None = None
    labels: dict[LabelName, ShortText] = Field(default_factory=dict, max_length=MAX_LABELS)
    at: UtcDatetime = Field(default_factory=utc_now)


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertSeverity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


def alert_fingerprint(name: str, labels: dict[str, str]) -> str:
    """A stable identity for an alert: same name and labels, same fingerprint."""
    canonical = name + "\x00" + "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class Alert(_Event):
    """An alert firing or resolved (``alerts``, key = fingerprint)."""

    schema_version: Literal[1] = 1
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    name: LabelName
    state: AlertState
    severity: AlertSeverity
    labels: dict[LabelName, ShortText] = Field(default_factory=dict, max_length=MAX_LABELS)
    annotations: dict[LabelName, Annotated[str, Field(max_length=4_096)]] = Field(
        default_factory=dict, max_length=MAX_LABELS
    )
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = None
    source: ShortText = "flywheel"

    @classmethod
    def build(
        cls,
        name: str,
        *,
        state: AlertState,
        severity: AlertSeverity,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        source: str = "flywheel",
    ) -> Alert:
        return cls(
            fingerprint=alert_fingerprint(name, labels),
            name=name,
            state=state,
            severity=severity,
            labels=labels,
            annotations=annotations or {},
            starts_at=starts_at or utc_now(),
            ends_at=ends_at,
            source=source,
        )


class DeadLetter(_Event):
    """A rejected input with the reason (``feedback.dlq``, ``alerts.dlq``). Nothing is lost:
    ``original_b64`` holds the exact bytes (base64) so ``flywheel dlq replay`` can resend them."""

    schema_version: Literal[1] = 1
    reason: Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]
    error: str = Field(max_length=2_000)
    field: str | None = Field(default=None, max_length=256)
    original_b64: str
    original_key: str | None = Field(default=None, max_length=1_024)
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    at: UtcDatetime = Field(default_factory=utc_now)
