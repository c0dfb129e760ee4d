"""Every Kafka topic Flywheel uses, with its partitions, retention and compaction.

Keys are task names throughout, so one task's events stay ordered on one partition
and tasks spread across partitions (and thus across consumer-group members).
This module is the single place topic names are spelled; services import the
constants instead of writing strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ALERTS",
    "ALERTS_DLQ",
    "ALERTS_NOTIFICATIONS",
    "ALERTS_STATE",
    "ALL_TOPICS",
    "FEEDBACK_DLQ",
    "FEEDBACK_EVENTS",
    "HEARTBEATS",
    "METRICS_PERFORMANCE",
    "MODELS_PUBLISHED",
    "MODELS_REGISTRY",
    "ONLINE_FEATURES",
    "PREDICTIONS_LOG",
    "PREDICTIONS_REQUESTS",
    "PREDICTIONS_RESULTS",
    "TASKS",
    "TRAINING_BATCHES",
    "TopicSpec",
    "topic_by_name",
]

_DAY_MS: Final = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as it must exist on the broker."""

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = 7 * _DAY_MS
    extra_config: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def broker_config(self) -> dict[str, str]:
        """The topic-level configs to create it with."""
        cfg: dict[str, str] = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None and not self.compacted:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.compacted:
            # Compacted topics are sources of truth: keep the latest record per key
            # forever, but let the cleaner run soon enough that replays stay short.
            cfg["min.cleanable.dirty.ratio"] = "0.1"
            cfg["segment.ms"] = str(3600 * 1000)
        cfg.update(self.extra_config)
        return cfg


FEEDBACK_EVENTS = TopicSpec(
    "feedback.events", 6, description="Feedback events from client services (key = task)."
)
FEEDBACK_DLQ = TopicSpec(
    "feedback.dlq",
    3,
    retention_ms=30 * _DAY_MS,
    description="Rejected feedback: original bytes plus the reason, for replay.",
)
TRAINING_BATCHES = TopicSpec(
    "training.batches", 6, description="Validated, de-duplicated per-task batches."
)
TASKS = TopicSpec("tasks", 1, compacted=True, description="Task definitions (key = task).")
MODELS_REGISTRY = TopicSpec(
    "models.registry",
    3,
    compacted=True,
    # Model versions carry their LightGBM text; bounded models stay well under this.
    extra_config={"max.message.bytes": str(16 * 1024 * 1024)},
    description="Every model version (key task@vN) and champion change (key task#seq).",
)
MODELS_PUBLISHED = TopicSpec(
    "models.published", 3, description="Announcements of a new champion per task."
)
PREDICTIONS_LOG = TopicSpec("predictions.log", 6, description="Every prediction served.")
PREDICTIONS_REQUESTS = TopicSpec(
    "predictions.requests", 3, description="Offline batch prediction requests."
)
PREDICTIONS_RESULTS = TopicSpec(
    "predictions.results", 3, description="Results of offline batch prediction requests."
)
ONLINE_FEATURES = TopicSpec(
    "features.online", 3, compacted=True, description="Entity features (key = task:entity)."
)
HEARTBEATS = TopicSpec(
    "services.heartbeats", 1, retention_ms=_DAY_MS, description="Service health heartbeats."
)
METRICS_PERFORMANCE = TopicSpec(
    "metrics.performance", 3, description="Rolling performance windows from the optimizer."
)
ALERTS = TopicSpec("alerts", 3, description="Alerts firing and resolved (key = fingerprint).")
ALERTS_NOTIFICATIONS = TopicSpec(
    "alerts.notifications",
    3,
    retention_ms=30 * _DAY_MS,
    description="Audit of every notification attempt.",
)
ALERTS_DLQ = TopicSpec(
    "alerts.dlq", 1, retention_ms=30 * _DAY_MS, description="Notifications that could not be sent."
)
ALERTS_STATE = TopicSpec(
    "alerts.state",
    1,
    compacted=True,
    description="The alerter's durable state: alerts, silences, notification log, intents.",
)

ALL_TOPICS: Final[tuple[TopicSpec, ...]] = (
    FEEDBACK_EVENTS,
    FEEDBACK_DLQ,
    TRAINING_BATCHES,
    TASKS,
    MODELS_REGISTRY,
    MODELS_PUBLISHED,
    PREDICTIONS_LOG,
    PREDICTIONS_REQUESTS,
    PREDICTIONS_RESULTS,
    ONLINE_FEATURES,
    HEARTBEATS,
    METRICS_PERFORMANCE,
    ALERTS,
    ALERTS_NOTIFICATIONS,
    ALERTS_DLQ,
    ALERTS_STATE,
)


def topic_by_name(name: str) -> TopicSpec:
    """The spec of a topic, by its name; KeyError for a name that is not Flywheel's."""
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
