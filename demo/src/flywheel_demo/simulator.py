"""A simulated client service: it asks for predictions and reports what really happened.

Exactly what a product service integrating Flywheel does, through the SDK: draw a row
(its own traffic), ``predict`` with a fallback for when there is no model yet, act on
the answer, observe the outcome, ``publish_feedback`` carrying the ``prediction_id``.
The outcome comes from the scenario's ground truth, which changes at the drift point.

Each service's world changes at a fixed moment: the midpoint plus the service's
``drift_offset_s`` (the demo staggers the three by 3 s: apart in the chart, and at
different points of a champion's life). Nothing is timed to the champions: the
optimizer keeps a task's drift detector across routine promotions, so a change anywhere
between two champion swaps is judged against the history before it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flywheel_client import Fallback, Features, FlywheelClientError, PredictionResult
from flywheel_demo.scenarios import Scenario, task_name
from flywheel_demo.timeline import Outcome, TaskTimeline

__all__ = ["Clock", "PredictionClient", "ServiceSimulator"]


class PredictionClient(Protocol):
    """The part of the SDK's ``AsyncFlywheelClient`` a simulated service uses."""

    async def predict(
        self, task: str, features: Features, *, fallback: Fallback | None = None
    ) -> PredictionResult: ...

    async def publish_feedback(
        self, task: str, features: Features, label: Any, *, prediction: PredictionResult | None
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class Clock:
    """The demo's schedule, on ``time.monotonic()``."""

    start: float
    drift_at_s: float
    duration_s: float
    wall_start: float = 0.0  # time.time() at ``start``, to place sink arrivals

    @classmethod
    def starting_now(cls, *, drift_at_s: float, duration_s: float) -> Clock:
        return cls(time.monotonic(), drift_at_s, duration_s, time.time())

    def at_wall(self, wall: float) -> float:
        """Seconds since the traffic started, for a ``time.time()`` value."""
        return wall - self.wall_start

    def now(self) -> float:
        """Seconds since the traffic started."""
        return time.monotonic() - self.start

    @property
    def over(self) -> bool:
        return self.now() >= self.duration_s


def is_correct(scenario: Scenario, prediction: PredictionResult, truth: bool | str) -> bool | None:
    """Whether the model's label matched the observed one (None for a fallback)."""
    if prediction.fallback or prediction.label is None:
        return None
    if scenario.label_spec.classes:
        return str(prediction.label) == truth
    return bool(prediction.label) == truth


class ServiceSimulator:
    """One simulated service sending ``rate`` predictions + feedback events a second."""

    def __init__(
        self,
        scenario: Scenario,
        client: PredictionClient,
        timeline: TaskTimeline,
        clock: Clock,
        *,
        rate: float,
        seed: int,
        workers: int = 8,
        drift_offset_s: float = 0.0,
    ) -> None:
        self.scenario = scenario
        self.task = task_name(scenario)
        self.client = client
        self.timeline = timeline
        self.clock = clock
        self.rate = rate
        self.workers = workers
        self.drift_offset_s = drift_offset_s
        self._rng = random.Random(seed)  # noqa: S311 - simulated traffic, not security
        self._next_row = scenario.rows(self._rng)
        self._next_slot = clock.start

    def _fallback(self, features: Mapping[str, object]) -> dict[str, object]:
        # No model yet: the service's old hand-written rule (here: a constant guess).
        classes = self.scenario.label_spec.classes
        return {"label": classes[len(classes) // 2] if classes else True}

    async def _paced(self) -> bool:
        """Wait for this worker's next send slot; False once the demo is over."""
        slot = self._next_slot = max(self._next_slot + 1.0 / self.rate, time.monotonic())
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return not self.clock.over

    async def _one(self) -> None:
        row = self._next_row()
        started = time.perf_counter()
        try:
            prediction = await self.client.predict(self.task, row, fallback=self._fallback)
        except FlywheelClientError:
            self.timeline.errors += 1
            return
        latency_ms = (time.perf_counter() - started) * 1000
        truth = self.scenario.label(row, drifted=self._drifted(), rng=self._rng)
        self.timeline.record(
            Outcome(
                at=self.clock.now(),
                latency_ms=latency_ms,
                correct=is_correct(self.scenario, prediction, truth),
                version=prediction.model_version,
                cached=prediction.cached,
            )
        )
        try:
            await self.client.publish_feedback(self.task, row, truth, prediction=prediction)
        except FlywheelClientError:
            self.timeline.errors += 1
            return
        self.timeline.feedback_sent += 1

    def _drifted(self) -> bool:
        line = self.timeline
        now = self.clock.now()
        if line.drift_at is None and now >= self.clock.drift_at_s + self.drift_offset_s:
            line.drift_at = now
        return line.drift_at is not None

    async def _worker(self) -> None:
        while await self._paced():
            await self._one()

    async def run(self) -> None:
        """Send traffic until the clock says the demo is over."""
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))
