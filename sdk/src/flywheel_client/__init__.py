"""Flywheel's client SDK: predictions that keep learning, in a few lines.

A library, never run; it never reads the environment. See ``docs/sdk.md``.
"""

from flywheel_client.async_client import AsyncFlywheelClient
from flywheel_client.client import FlywheelClient
from flywheel_client.errors import (
    FlywheelClientError,
    NoModel,
    PlatformUnavailable,
    Unauthorized,
    ValidationRejected,
)
from flywheel_client.feedback import build_feedback_event
from flywheel_client.models import (
    Fallback,
    FallbackValue,
    Features,
    PredictionBatch,
    PredictionResult,
)
from flywheel_client.retry import RetryPolicy

__all__ = [
    "AsyncFlywheelClient",
    "Fallback",
    "FallbackValue",
    "Features",
    "FlywheelClient",
    "FlywheelClientError",
    "NoModel",
    "PlatformUnavailable",
    "PredictionBatch",
    "PredictionResult",
    "RetryPolicy",
    "Unauthorized",
    "ValidationRejected",
    "build_feedback_event",
]
