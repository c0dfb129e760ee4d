"""Drift on a task's error stream fires once, and resolves after a quiet spell or a new champion."""

from __future__ import annotations

import random

import pytest

from optimizer.drift import DriftWatch


def feed(
    watch: DriftWatch, task: str, rate: float, n: int, t0: float, *, rng: random.Random
) -> list[float]:
    detections = []
    for i in range(n):
        error = 1.0 if rng.random() < rate else 0.0
        if watch.update(task, error, t0 + i) is not None:
            detections.append(t0 + i)
    return detections


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley"])
def test_a_jump_in_error_rate_is_detected(kind: str) -> None:
    rng = random.Random(11)
    watch = DriftWatch(detector=kind, ph_threshold=20.0)  # type: ignore[arg-type]
    assert feed(watch, "t", 0.05, 2000, 0, rng=rng) == []
    detections = feed(watch, "t", 0.6, 500, 2000, rng=rng)
    assert detections, "the jump from 5 % to 60 % errors went unnoticed"
    assert detections[0] < 2300


def test_detection_carries_its_evidence() -> None:
    rng = random.Random(5)
    watch = DriftWatch()
    feed(watch, "t", 0.05, 1000, 0, rng=rng)
    detection = None
    for i in range(500):
        detection = watch.update("t", 1.0 if rng.random() < 0.7 else 0.0, 1000 + i) or detection
        if detection:
            break
    assert detection is not None
    assert detection.error_before < 0.1
    assert detection.error_recent > detection.error_before


def test_settles_after_quiet_time_and_enough_labels() -> None:
    rng = random.Random(2)
    watch = DriftWatch(quiet_s=100, min_samples_after=50)
    feed(watch, "t", 0.02, 1000, 0, rng=rng)
    last = None
    for i in range(300):
        if watch.update("t", 1.0 if rng.random() < 0.8 else 0.0, 1000 + i):
            last = 1000.0 + i
            break
    assert last is not None
    assert watch.settled(last + 50) == []
    assert watch.settled(last + 200) == []  # quiet, but no labels since: not proven
    feed(watch, "t", 0.8, 60, last + 1, rng=random.Random(99))
    assert watch.settled(last + 500) == ["t"]
    assert watch.settled(last + 600) == []  # once


def test_tasks_are_independent_and_reset_forgets() -> None:
    rng = random.Random(3)
    watch = DriftWatch()
    feed(watch, "a", 0.05, 1000, 0, rng=rng)
    assert feed(watch, "b", 0.05, 1000, 0, rng=rng) == []
    assert feed(watch, "a", 0.7, 400, 1000, rng=rng)
    watch.reset("a")
    assert watch.settled(1e9) == []
