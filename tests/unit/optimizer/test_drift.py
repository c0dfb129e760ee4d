"""Drift on a task's error stream: fires on a rise, across promotions, and resolves after
a quiet spell or a champion that answers it."""

from __future__ import annotations

import random

import pytest

from optimizer.drift import DriftWatch

KINDS = ["adwin", "page_hinkley"]


def feed(
    watch: DriftWatch, task: str, rate: float, n: int, t0: float, *, rng: random.Random
) -> list[float]:
    detections = []
    for i in range(n):
        error = 1.0 if rng.random() < rate else 0.0
        if watch.update(task, error, t0 + i) is not None:
            detections.append(t0 + i)
    return detections


@pytest.mark.parametrize("kind", KINDS)
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


def gradual_drift(kind: str, *, restart_each_champion: bool, seed: int) -> list[float]:
    """Four champions at 5 % errors, then each champion's stretch 4 points worse (up to
    40 %), 150 labels per champion: no single stretch holds a change. Stops at the
    first detection (the next champion would answer it)."""
    rng = random.Random(seed)
    detections: list[float] = []
    watch = DriftWatch(detector=kind, ph_threshold=20.0)  # type: ignore[arg-type]
    for stretch in range(12):
        if restart_each_champion:
            watch = DriftWatch(detector=kind, ph_threshold=20.0)  # type: ignore[arg-type]
        else:
            assert not watch.promoted("t")  # routine: nothing open, nothing restarted
        rate = 0.05 if stretch < 4 else min(0.05 + 0.04 * (stretch - 3), 0.4)
        detections += feed(watch, "t", rate, 150, stretch * 150, rng=rng)
        if detections:
            break
    return detections


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_drift_spread_over_several_champions_is_detected(kind: str, seed: int) -> None:
    kept = gradual_drift(kind, restart_each_champion=False, seed=seed)
    assert kept, "a drift over several champions went unnoticed"
    assert kept[0] >= 4 * 150  # not before the error started to rise
    # What the optimizer did before: a detector restarted with every champion never sees it.
    restarted = gradual_drift(kind, restart_each_champion=True, seed=seed)
    assert restarted == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_better_champion_is_no_drift_and_a_later_rise_still_is(kind: str) -> None:
    rng = random.Random(21)
    watch = DriftWatch(detector=kind, ph_threshold=20.0)  # type: ignore[arg-type]
    assert feed(watch, "t", 0.4, 1500, 0, rng=rng) == []
    assert not watch.promoted("t")
    assert feed(watch, "t", 0.03, 1500, 1500, rng=rng) == [], "an improvement paged"
    assert not watch.is_open("t")
    # The improved level is the new baseline: a rise back to 25 % is a drift.
    assert feed(watch, "t", 0.25, 500, 3000, rng=rng)


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


@pytest.mark.parametrize("kind", KINDS)
def test_a_champion_after_an_open_drift_answers_it_and_restarts_the_baseline(kind: str) -> None:
    rng = random.Random(3)
    watch = DriftWatch(detector=kind, ph_threshold=20.0)  # type: ignore[arg-type]
    feed(watch, "a", 0.05, 1000, 0, rng=rng)
    assert feed(watch, "b", 0.05, 1000, 0, rng=rng) == []
    assert feed(watch, "a", 0.7, 400, 1000, rng=rng)
    assert watch.is_open("a") and not watch.is_open("b")  # tasks are independent
    assert watch.promoted("a")
    assert not watch.is_open("a")
    assert watch.settled(1e9) == []  # resolved by the champion, not again by the quiet spell
    assert not watch.promoted("a")  # the next champion is routine again
    # Post-drift baseline: the new, higher level is normal now; a further rise pages.
    assert feed(watch, "a", 0.7, 400, 1400, rng=rng) == []
    assert feed(watch, "a", 1.0, 200, 1800, rng=rng)
