"""Rolling windows: slots by event time, bounded memory, percentiles within 1 %."""

from __future__ import annotations

import math
import random

import pytest

from optimizer.windows import WINDOWS, LatencySketch, RollingSeries


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 0.99, 1.0])
def test_sketch_quantiles_are_within_relative_accuracy(q: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(1.5, 1.0) for _ in range(20_000)]
    sketch = LatencySketch(relative_accuracy=0.01)
    for value in values:
        sketch.add(value)
    estimate = sketch.quantile(q)
    assert estimate is not None
    assert estimate == pytest.approx(exact_quantile(values, q), rel=0.0101)


def test_merged_sketches_answer_like_one_sketch() -> None:
    rng = random.Random(3)
    values = [rng.uniform(0.1, 500) for _ in range(5_000)]
    whole, left, right = LatencySketch(), LatencySketch(), LatencySketch()
    for i, value in enumerate(values):
        whole.add(value)
        (left if i % 2 else right).add(value)
    left.merge(right)
    assert left.count == whole.count
    assert left.quantile(0.95) == whole.quantile(0.95)


def test_empty_sketch_has_no_quantile() -> None:
    assert LatencySketch().quantile(0.5) is None
    with pytest.raises(ValueError, match="q must"):
        LatencySketch().quantile(1.5)


def test_windows_only_see_their_own_slots() -> None:
    series = RollingSeries(slot_s=5.0)
    now = 10_000.0
    # One prediction per second for the last hour; the newest at now - 1.
    for age in range(1, 3600):
        series.add(now - age, now, sums={"predictions": 1})
    counts = {w: series.totals(length, now).sums["predictions"] for w, length in WINDOWS.items()}
    # Slot granularity (5 s) bounds the error at each window's edge.
    assert abs(counts["1m"] - 60) <= 5
    assert abs(counts["5m"] - 300) <= 5
    assert abs(counts["1h"] - 3600) <= 5


def test_observations_older_than_the_horizon_are_refused_and_pruned() -> None:
    series = RollingSeries(slot_s=5.0, horizon_s=60.0)
    assert not series.add(0.0, 100.0, sums={"x": 1})
    assert series.add(90.0, 100.0, sums={"x": 1})
    series.prune(200.0)
    assert len(series) == 0


def test_future_event_times_are_clamped_to_now() -> None:
    series = RollingSeries(slot_s=5.0)
    series.add(1_000_000.0, 100.0, sums={"x": 1})  # a client with a fast clock
    assert series.totals(60.0, 100.0).sums["x"] == 1


def test_counter_increase_survives_a_restart_reset() -> None:
    series = RollingSeries(slot_s=1.0)
    series.add(1.0, 1.0, counters={"requests_total": 100})
    series.add(2.0, 2.0, counters={"requests_total": 150})
    assert series.totals(60.0, 3.0).increases["requests_total"] == 50
    series.add(3.0, 3.0, counters={"requests_total": 20})  # the service restarted
    assert series.totals(60.0, 4.0).increases["requests_total"] == 20


def test_maxima_and_latency_sketches_per_window() -> None:
    series = RollingSeries(slot_s=1.0)
    series.add(10.0, 10.0, maxima={"rss": 5.0}, latencies={"latency": 10.0})
    series.add(100.0, 100.0, maxima={"rss": 3.0}, latencies={"latency": 20.0})
    recent = series.totals(60.0, 100.0)
    assert recent.maxima == {"rss": 3.0}
    assert recent.sketches["latency"].count == 1
    assert series.totals(3600.0, 100.0).maxima == {"rss": 5.0}


def test_running_totals_equal_a_rescan_with_late_and_early_events() -> None:
    rng = random.Random(21)
    series = RollingSeries(slot_s=5.0)
    seen: list[tuple[float, float]] = []  # (event time, latency) as recorded
    now = 50_000.0
    for _ in range(6_000):
        now += rng.expovariate(2.0)
        # Mostly current, some late by up to 20 min, a few from beyond the horizon.
        t = now - (rng.expovariate(1 / 1200) if rng.random() < 0.2 else rng.random())
        latency = rng.lognormvariate(1, 1)
        if series.add(t, now, sums={"n": 1}, latencies={"latency": latency}):
            seen.append((t, latency))
        if rng.random() < 0.01:
            series.prune(now)
    for length in WINDOWS.values():
        first = math.ceil((now - length) / 5.0) * 5.0
        expected = sorted(v for t, v in seen if t >= first)
        totals = series.totals(length, now)
        assert totals.sums["n"] == len(expected)
        sketch = totals.sketches["latency"]
        assert sketch.count == len(expected)
        estimate = sketch.quantile(0.9)
        assert estimate == pytest.approx(expected[int(0.9 * (len(expected) - 1))], rel=0.0101)
