"""The optimizer end to end without I/O: drift alerts, advice and exports in virtual time."""

from __future__ import annotations

import random

from prometheus_client import generate_latest

from flywheel.events import AlertState, ModelPublished
from flywheel.tasks import Objective
from optimizer.advice import AdviceBudgets, ChampionFacts
from optimizer.core import DRIFT_ALERT, OptimizerCore
from optimizer.drift import DriftWatch
from optimizer.exporter import OptimizerMetrics
from optimizer.rules import RuleFile
from optimizer.tracker import PerformanceTracker
from tests.unit.optimizer.helpers import T0, feedback, prediction


def make_core(champions: list[ChampionFacts] | None = None) -> OptimizerCore:
    return OptimizerCore(
        rules=RuleFile(),
        tracker=PerformanceTracker(shape_of=lambda _t: (Objective.BINARY, ())),
        drift=DriftWatch(quiet_s=60, min_samples_after=50),
        budgets=AdviceBudgets(min_samples=20, latency_p99_ms=50, batch_min_throughput_per_s=1e9),
        metrics=OptimizerMetrics(),
        champions=lambda: champions or [],
    )


def serve_and_label(
    core: OptimizerCore, n: int, t0: float, error_rate: float, rng: random.Random
) -> float:
    t = t0
    for i in range(n):
        t = t0 + i * 0.1
        truth = rng.random() < 0.5
        wrong = rng.random() < error_rate
        score = 0.9 if truth != wrong else 0.1
        pid = f"p{t:.1f}"
        core.on_prediction(prediction(pid, t, score=score), t)
        core.on_feedback(feedback(pid, t + 0.05, truth), t + 0.05)
    return t


def test_drift_fires_once_then_resolves_after_a_quiet_spell() -> None:
    rng = random.Random(4)
    core = make_core()
    t = serve_and_label(core, 1500, T0, 0.05, rng)
    core.tick(t)
    assert core.book.drain() == []
    t = serve_and_label(core, 400, t + 1, 0.7, rng)
    core.tick(t)
    fired = core.book.drain()
    assert [a.name for a in fired] == [DRIFT_ALERT]
    assert fired[0].state is AlertState.FIRING
    assert float(fired[0].annotations["error_recent"]) > float(fired[0].annotations["error_before"])
    # The new regime is stable: no second page, and after the quiet time, a resolve.
    t = serve_and_label(core, 600, t + 1, 0.7, rng)
    core.tick(t)
    t = serve_and_label(core, 100, t + 120, 0.7, rng)
    core.tick(t + 1)
    transitions = core.book.drain()
    assert [a.state for a in transitions][-1] is AlertState.RESOLVED
    assert all(a.fingerprint == fired[0].fingerprint for a in transitions)
    assert sum(a.state is AlertState.FIRING for a in transitions) == 0


def test_a_new_champion_resolves_the_drift_alert() -> None:
    rng = random.Random(8)
    core = make_core()
    t = serve_and_label(core, 1500, T0, 0.05, rng)
    t = serve_and_label(core, 400, t + 1, 0.7, rng)
    assert core.book.firing()
    publish(core, 2, t + 1)
    states = [a.state for a in core.book.drain()]
    assert states == [AlertState.FIRING, AlertState.RESOLVED]
    assert core.book.firing() == []
    assert not core.drift.is_open("t")
    # The detector restarted on the post-drift level: the new world's error is no page.
    t = serve_and_label(core, 600, t + 2, 0.7, rng)
    core.tick(t)
    assert core.book.drain() == []


def publish(core: OptimizerCore, version: int, at: float) -> None:
    core.on_published(ModelPublished(task="t", version=version, model_sha256="0" * 64), at)


def test_a_drift_spread_over_routine_promotions_pages() -> None:
    # A fast loop: a champion every 150 labels, the error 3 points worse with each one.
    rng = random.Random(6)
    core = make_core()
    t, version = T0, 1
    for stretch in range(14):
        rate = 0.05 if stretch < 4 else 0.05 + 0.03 * (stretch - 3)
        t = serve_and_label(core, 150, t + 1, rate, rng)
        core.tick(t)
        if core.book.firing():
            break
        version += 1
        publish(core, version, t + 0.5)
        assert core.book.drain() == []  # routine promotions: nothing fires or resolves
    fired = core.book.drain()
    assert [(a.name, a.state) for a in fired] == [(DRIFT_ALERT, AlertState.FIRING)]
    assert stretch >= 4, "paged before the error began to rise"


def test_a_better_champion_is_not_a_drift() -> None:
    rng = random.Random(9)
    core = make_core()
    t = serve_and_label(core, 1500, T0, 0.35, rng)
    publish(core, 2, t + 0.5)
    t = serve_and_label(core, 1500, t + 1, 0.03, rng)
    core.tick(t)
    assert core.book.drain() == []


def test_advice_and_exports_agree() -> None:
    core = make_core([ChampionFacts("t", version=3, trees=900, max_trees=200, model_bytes=10_000)])
    for i in range(200):
        core.on_prediction(prediction(f"p{i}", T0 + i, latency_ms=120.0), T0 + i)
    metrics = core.tick(T0 + 200)
    kinds = {(r.kind, r.target) for r in core.recommendations}
    assert ("model_over_tree_budget", "t") in kinds
    assert ("model_over_latency_budget", "t") in kinds
    assert ("cache_not_paying", "t") in kinds
    latency = next(r for r in core.recommendations if r.kind == "model_over_latency_budget")
    assert latency.evidence["latency_p99_ms"] > 50
    assert {m.name for m in metrics} >= {"latency_p99_ms", "throughput_per_s", "cache_hit_rate"}
    advertised = {m.labels["kind"] for m in metrics if m.name == "recommendation_active"}
    assert advertised == {k for k, _ in kinds}
    text = generate_latest(core.metrics.registry).decode()
    assert (
        'flywheel_optimizer_prediction_latency_seconds{quantile="0.99",task="t",window="5m"}'
        in text
    )
    assert 'flywheel_optimizer_champion_trees{task="t"} 900.0' in text
    assert 'flywheel_optimizer_recommendations{kind="cache_not_paying",target="t"} 1.0' in text
    first_since = latency.since
    core.tick(T0 + 210)
    again = next(r for r in core.recommendations if r.kind == "model_over_latency_budget")
    assert again.since == first_since  # a standing recommendation keeps its start


def test_live_accuracy_below_baseline_is_advised() -> None:
    core = make_core()
    # Labels repeat in long runs, so "same as last time" is nearly always right,
    # while the model is right only half the time.
    for i in range(200):
        truth = (i // 50) % 2 == 0
        score = 0.9 if i % 2 else 0.1
        core.on_prediction(prediction(f"p{i}", T0 + i, score=score), T0 + i)
        core.on_feedback(feedback(f"p{i}", T0 + i + 0.5, truth), T0 + i + 0.5)
    core.tick(T0 + 201)
    advice = [r for r in core.recommendations if r.kind == "accuracy_below_baseline"]
    assert len(advice) == 1
    assert advice[0].evidence["baseline_error"] < advice[0].evidence["model_error"]
