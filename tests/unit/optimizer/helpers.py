"""Event builders for the optimizer's unit tests (virtual time: seconds since the epoch)."""

from __future__ import annotations

from datetime import UTC, datetime

from flywheel.events import FeedbackEvent, Heartbeat, PredictionLog

T0 = 1_800_000_000.0


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def prediction(
    pid: str,
    t: float,
    *,
    task: str = "t",
    version: int = 1,
    score: float | list[float] = 0.9,
    latency_ms: float = 5.0,
    cached: bool = False,
) -> PredictionLog:
    return PredictionLog(
        prediction_id=pid,
        task=task,
        model_version=version,
        score=score,
        latency_ms=latency_ms,
        cached=cached,
        served_at=at(t),
    )


def feedback(
    pid: str | None, t: float, label: bool | str | float, *, task: str = "t"
) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"e-{pid}-{t}",
        task=task,
        features={"x": 1},
        label=label,
        prediction_id=pid,
        occurred_at=at(t),
    )


def heartbeat(t: float, *, rss: int = 100, gauges: dict[str, float] | None = None) -> Heartbeat:
    return Heartbeat(
        service="predictor",
        instance="h:1",
        at=at(t),
        rss_bytes=rss,
        cpu_percent=50.0,
        gauges=gauges or {},
    )
