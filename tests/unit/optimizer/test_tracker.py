"""The tracker's read-out: per task, per version, per service, per consumer group."""

from __future__ import annotations

import pytest

from flywheel.tasks import Objective
from optimizer.tracker import MetricSample, PerformanceTracker
from tests.unit.optimizer.helpers import T0, feedback, heartbeat, prediction


def pick(samples: list[MetricSample], name: str, window: str = "1m", **labels: str) -> float:
    found = [
        s.value
        for s in samples
        if s.name == name
        and s.window == window
        and all(s.labels.get(k) == v for k, v in labels.items())
        and ("version" in labels or "version" not in s.labels)
    ]
    assert len(found) == 1, (name, window, labels, found)
    return found[0]


def test_latency_throughput_and_cache_hits() -> None:
    tracker = PerformanceTracker()
    now = T0 + 60
    for i in range(100):
        tracker.observe_prediction(
            prediction(f"p{i}", T0 + i * 0.5, latency_ms=float(i + 1), cached=i % 4 == 0), now
        )
    samples = tracker.snapshot(now)
    assert pick(samples, "predictions") == 100
    assert pick(samples, "throughput_per_s") == pytest.approx(100 / 60)
    assert pick(samples, "throughput_per_s", "1h") == pytest.approx(100 / 3600)
    assert pick(samples, "cache_hit_rate") == 0.25
    assert pick(samples, "latency_p50_ms") == pytest.approx(50, rel=0.011)
    assert pick(samples, "latency_p99_ms") == pytest.approx(99, rel=0.011)
    assert pick(samples, "cached_latency_p50_ms") < pick(samples, "uncached_latency_p50_ms") + 2


def test_live_accuracy_per_task_and_version_against_the_no_change_baseline() -> None:
    tracker = PerformanceTracker(shape_of=lambda _t: (Objective.BINARY, ()))
    now = T0 + 50
    # Labels alternate, so "same as last time" is always wrong; the model is right 3 in 4.
    for i in range(40):
        truth = i % 2 == 0
        right = i % 4 != 0
        score = 0.9 if truth == right else 0.1
        tracker.observe_prediction(
            prediction(f"p{i}", T0 + i, version=1 + i // 20, score=score), now
        )
        judged = tracker.observe_feedback(feedback(f"p{i}", T0 + i + 0.5, truth), now)
        assert judged is not None
    samples = tracker.snapshot(now)
    assert pick(samples, "live_accuracy") == 0.75
    assert pick(samples, "model_error_rate") == 0.25
    assert pick(samples, "baseline_accuracy") == 0.0
    assert pick(samples, "live_accuracy", version="1") == 0.75
    assert pick(samples, "labeled", version="2") == 20


def test_regression_reports_mae_and_rmse() -> None:
    tracker = PerformanceTracker(shape_of=lambda _t: (Objective.REGRESSION, ()))
    now = T0 + 10
    for i, (score, truth) in enumerate([(1.0, 2.0), (3.0, 0.0)]):
        tracker.observe_prediction(prediction(f"p{i}", T0, score=score), now)
        tracker.observe_feedback(feedback(f"p{i}", T0 + 1, truth), now)
    samples = tracker.snapshot(now)
    assert pick(samples, "live_mae") == 2.0
    assert pick(samples, "live_rmse") == pytest.approx((5.0) ** 0.5)
    assert pick(samples, "baseline_error_rate") == 2.0  # previous label 2.0 vs 0.0


def test_service_memory_cpu_gauges_and_error_rate_from_counters() -> None:
    tracker = PerformanceTracker()
    tracker.observe_heartbeat(
        heartbeat(T0, rss=300, gauges={"requests_total": 100, "request_errors_total": 0}), T0
    )
    tracker.observe_heartbeat(
        heartbeat(
            T0 + 10,
            rss=200,
            gauges={"requests_total": 300, "request_errors_total": 10, "queue_depth": 4},
        ),
        T0 + 10,
    )
    samples = tracker.snapshot(T0 + 10)
    assert pick(samples, "rss_bytes") == 300
    assert pick(samples, "cpu_percent") == 50.0
    assert pick(samples, "queue_depth") == 4
    assert pick(samples, "error_rate") == pytest.approx(10 / 200)


def test_consumer_lag_per_group_and_topic() -> None:
    tracker = PerformanceTracker()
    tracker.observe_lag({("ingest", "feedback.events"): 40}, T0)
    tracker.observe_lag({("ingest", "feedback.events"): 10}, T0 + 30)
    samples = tracker.snapshot(T0 + 30)
    assert pick(samples, "consumer_lag", group="ingest", topic="feedback.events") == 40


def test_series_count_is_bounded() -> None:
    tracker = PerformanceTracker(max_series=3)
    for i in range(5):
        tracker.observe_prediction(prediction(f"p{i}", T0, task=f"task{i}"), T0)
    assert tracker.series_count() == 3
    assert tracker.series_refused == 2


def test_prune_forgets_idle_series() -> None:
    tracker = PerformanceTracker()
    tracker.observe_prediction(prediction("p", T0), T0)
    tracker.prune(T0 + 7200)
    assert tracker.series_count() == 0
    assert tracker.snapshot(T0 + 7200) == []
