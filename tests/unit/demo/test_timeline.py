"""Per-task arithmetic: accuracy windows, p99, cache hits, version changes, recovery."""

from __future__ import annotations

import pytest

from flywheel_demo.timeline import Outcome, TaskTimeline, percentile


def outcome(
    at: float,
    correct: bool | None = True,
    version: int | None = 1,
    *,
    latency_ms: float = 1.0,
    cached: bool = False,
) -> Outcome:
    return Outcome(at=at, latency_ms=latency_ms, correct=correct, version=version, cached=cached)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) is None


def test_accuracy_counts_model_answers_only_in_the_window() -> None:
    line = TaskTimeline("t")
    for at, correct in [(0.5, None), (1.0, True), (2.0, False), (3.0, True), (9.0, False)]:
        line.record(outcome(at, correct, version=None if correct is None else 1))
    assert line.accuracy(0, 5) == pytest.approx(2 / 3)
    assert line.accuracy(5, 10) == 0.0
    assert line.accuracy(10, 20) is None
    assert line.fallbacks == 1
    assert line.predictions == 5


def test_version_changes_are_recorded_once_each() -> None:
    line = TaskTimeline("t")
    for at, version in [(0, None), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]:
        line.record(outcome(at, None if version is None else True, version=version))
    assert line.version_changes == [(1, 1), (3, 2), (5, 3)]
    assert line.versions_seen == [1, 2, 3]


def test_p99_and_cache_hit_rate() -> None:
    line = TaskTimeline("t")
    for i in range(100):
        line.record(outcome(i / 10, latency_ms=float(i + 1), cached=i % 4 == 0))
    line.record(outcome(10.5, None, version=None, cached=False))  # a fallback is never "served"
    assert line.p99_ms() == 99.0
    assert line.p99_ms(0, 5) == 50.0
    assert line.cache_hit_rate() == 0.25


def test_recovery_is_the_time_until_accuracy_is_back_near_its_old_level() -> None:
    line = TaskTimeline("t")
    # 10/s: right before t=20, half right for 20 <= t < 32, right again from t=32.
    for i in range(500):
        at = i / 10
        correct = True if at < 20 or at >= 32 else i % 2 == 0
        line.record(outcome(at, correct))
    recovered = line.recovery_s(20.0)
    # The rolling 5 s window is clean again 5 s after t=32 (within its 5-point slack a
    # little earlier).
    assert recovered is not None and 15 <= recovered <= 17


def test_no_recovery_when_it_never_gets_back() -> None:
    line = TaskTimeline("t")
    for i in range(300):
        line.record(outcome(i / 10, correct=i < 150 or i % 2 == 0))
    assert line.recovery_s(15.0) is None


def test_drift_point_defaults_to_the_plan() -> None:
    line = TaskTimeline("t")
    assert line.drift_point(50.0) == 50.0
    line.drift_at = 52.5
    assert line.drift_point(50.0) == 52.5
