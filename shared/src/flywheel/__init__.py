"""Flywheel's shared library: the event contracts and the plumbing every service uses.

A library, never run: it has no entry point and never reads the environment.
Services build frozen :class:`KafkaConfig` / :class:`RedisConfig` objects from their
own settings and pass them in.
"""

from flywheel.catalog import TaskCatalog, apply_tasks, delete_task
from flywheel.errors import (
    ConfigError,
    DependencyUnavailable,
    EventValidationError,
    FlywheelError,
    ModelError,
    ModelIntegrityError,
    SerdeError,
    TaskError,
    UnknownTaskError,
)
from flywheel.events import (
    Alert,
    AlertSeverity,
    AlertState,
    ChampionChange,
    DeadLetter,
    EntityFeatures,
    FeedbackEvent,
    Heartbeat,
    ModelPublished,
    ModelVersion,
    PerformanceMetric,
    PredictionLog,
    TrainingBatch,
    alert_fingerprint,
    utc_now,
)
from flywheel.kafka import (
    KafkaConfig,
    commit_processed,
    ensure_topics,
    make_consumer,
    make_producer,
    wait_for_kafka,
)
from flywheel.redis import RedisConfig, connect_redis, wait_for_redis
from flywheel.serde import decode, encode
from flywheel.tasks import (
    FeatureSpec,
    FeatureType,
    FlushPolicy,
    LabelSpec,
    LabelType,
    Objective,
    TaskDefinition,
    TrainingPolicy,
    load_task_file,
)

__all__ = [
    "Alert",
    "AlertSeverity",
    "AlertState",
    "ChampionChange",
    "ConfigError",
    "DeadLetter",
    "DependencyUnavailable",
    "EntityFeatures",
    "EventValidationError",
    "FeatureSpec",
    "FeatureType",
    "FeedbackEvent",
    "FlushPolicy",
    "FlywheelError",
    "Heartbeat",
    "KafkaConfig",
    "LabelSpec",
    "LabelType",
    "ModelError",
    "ModelIntegrityError",
    "ModelPublished",
    "ModelVersion",
    "Objective",
    "PerformanceMetric",
    "PredictionLog",
    "RedisConfig",
    "SerdeError",
    "TaskCatalog",
    "TaskDefinition",
    "TaskError",
    "TrainingBatch",
    "TrainingPolicy",
    "UnknownTaskError",
    "alert_fingerprint",
    "apply_tasks",
    "commit_processed",
    "connect_redis",
    "decode",
    "delete_task",
    "encode",
    "ensure_topics",
    "load_task_file",
    "make_consumer",
    "make_producer",
    "utc_now",
    "wait_for_kafka",
    "wait_for_redis",
]
