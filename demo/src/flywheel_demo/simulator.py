"""A simulated client service: it asks for predictions and reports what really happened.

Exactly what a product service integrating Flywheel does, through the SDK: draw a row
(its own traffic), ``predict`` with a fallback for when there is no model yet, act on
the answer, observe the outcome, ``publish_feedback`` carrying the ``prediction_id``.
The outcome comes from the scenario's ground truth, which changes at the drift point.

When exactly each service's world changes is :func:`drift_due`'s decision: from the
midpoint on, a couple of seconds into the life of the task's current champion. The
optimizer's drift detector restarts with every new champion (a new model is the loop's
answer, so a drift alert resolves then), and the trainer publishes one every flush
interval; a change just before a champion swap would be judged against almost nothing
and then forgotten. Placing it inside a champion's stretch gives the detector a
baseline before the change and time after it, as a slower-moving real world would.
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

__all__ = ["Clock", "DriftTiming", "PredictionClient", "ServiceSimulator", "drift_due"]


@dataclass(frozen=True, slots=True)
class DriftTiming:
    """When a service's drift may start: ``window`` = seconds into a champion's life;
    ``latest_s`` = after the midpoint, whatever the champions do (never skipped)."""

    window: tuple[float, float] = (2.0, 4.5)
    latest_s: float = 15.0


def drift_due(
    now: float, midpoint: float, last_champion: float | None, timing: DriftTiming = DriftTiming()
) -> bool:
    """Whether a service's concept changes now (``last_champion``: when the current
    model version first answered it, on the same clock)."""
    if now < midpoint:
        return False
    if now >= midpoint + timing.latest_s or last_champion is None:
        return True
    low, high = timing.window
    return low <= now - last_champion <= high


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
        drift_timing: DriftTiming = DriftTiming(),
    ) -> None:
        self.scenario = scenario
        self.task = task_name(scenario)
        self.client = client
        self.timeline = timeline
        self.clock = clock
        self.rate = rate
        self.workers = workers
        self.drift_timing = drift_timing
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
        if line.drift_at is None:
            last = line.version_changes[-1][0] if line.version_changes else None
            if drift_due(self.clock.now(), self.clock.drift_at_s, last, self.drift_timing):
                line.drift_at = self.clock.now()
        return line.drift_at is not None

    async def _worker(self) -> None:
        while await self._paced():
            await self._one()

    async def run(self) -> None:
        """Send traffic until the clock says the demo is over."""
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))
