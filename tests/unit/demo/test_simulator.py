"""A simulated service against an in-memory client: pacing, outcomes, the drift moment."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from flywheel_client import Fallback, Features, PredictionResult
from flywheel_demo.scenarios import SCENARIOS, task_name
from flywheel_demo.simulator import Clock, ServiceSimulator, is_correct
from flywheel_demo.timeline import TaskTimeline

DAISY = SCENARIOS[0]
ORACLE = SCENARIOS[1]


def test_is_correct_compares_labels_and_ignores_fallbacks() -> None:
    task = task_name(DAISY)
    assert is_correct(DAISY, PredictionResult(task=task, label=True, model_version=1), True)
    assert not is_correct(DAISY, PredictionResult(task=task, label=False, model_version=1), True)
    assert is_correct(DAISY, PredictionResult(task=task, label=True, fallback=True), True) is None
    oracle = PredictionResult(task=task_name(ORACLE), label="good", model_version=3)
    assert is_correct(ORACLE, oracle, "good")
    assert not is_correct(ORACLE, oracle, "fair")


class FakeClient:
    """Answers like the predictor would: a version, a label from the old concept."""

    def __init__(self, *, version_after: float, clock: Clock) -> None:
        self.version_after = version_after
        self.clock = clock
        self.feedback: list[tuple[str, dict[str, Any], Any, str | None]] = []

    async def predict(
        self, task: str, features: Features, *, fallback: Fallback | None = None
    ) -> PredictionResult:
        await asyncio.sleep(0)
        if self.clock.now() < self.version_after:
            assert callable(fallback)
            return PredictionResult.model_validate(
                {"task": task, **dict(fallback(features)), "fallback": True}  # type: ignore[arg-type]
            )
        return PredictionResult(
            task=task,
            prediction_id="p" * 32,
            model_version=1,
            label=DAISY.before(dict(features)),
            cached=features["steps"] % 2 == 0,
        )

    async def publish_feedback(
        self, task: str, features: Features, label: Any, *, prediction: PredictionResult | None
    ) -> object:
        self.feedback.append((task, dict(features), label, prediction and prediction.prediction_id))
        return None


def test_a_service_predicts_then_reports_the_outcome_at_its_rate() -> None:
    clock = Clock(time.monotonic(), drift_at_s=0.6, duration_s=1.0)
    client = FakeClient(version_after=0.2, clock=clock)
    timeline = TaskTimeline(task_name(DAISY))
    simulator = ServiceSimulator(
        DAISY, client, timeline, clock, rate=200, seed=1, drift_offset_s=0.1
    )
    asyncio.run(simulator.run())

    assert 150 <= timeline.predictions <= 210  # 200/s for 1 s, paced
    assert timeline.feedback_sent == timeline.predictions == len(client.feedback)
    assert timeline.errors == 0
    assert 0 < timeline.fallbacks < timeline.predictions
    # Every feedback event names its task and carries the prediction id when there was one.
    assert {task for task, *_ in client.feedback} == {"demo.daisy-chain.task-success"}
    assert any(pid == "p" * 32 for *_, pid in client.feedback)
    assert any(pid is None for *_, pid in client.feedback)  # fallbacks have none
    # The model knows the old concept: right before the drift, often wrong after it.
    # The world changes at the midpoint plus the service's offset, whatever the champions do.
    assert timeline.drift_at is not None and 0.7 <= timeline.drift_at < 0.8
    before = timeline.accuracy(0.2, timeline.drift_at)
    after = timeline.accuracy(timeline.drift_at, 1.0)
    assert before is not None and before > 0.9
    assert after is not None and after < 0.75
    assert timeline.version_changes[0][1] == 1


def test_clock_places_wall_times_on_the_demo_clock() -> None:
    clock = Clock.starting_now(drift_at_s=10, duration_s=20)
    assert clock.at_wall(time.time()) == pytest.approx(clock.now(), abs=0.05)
    assert not clock.over
