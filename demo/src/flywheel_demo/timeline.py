"""What happened during the demo, per task, on the demo's own clock.

The simulators record every prediction they asked for (latency, cache hit, model
version, and whether it turned out right once the label was known); the poller records
what the platform reported (the trainer's prequential accuracy, the optimizer's
window metrics). The live view, the chart and the summary all read from here.

Pure code (no I/O), so its arithmetic is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Outcome", "TaskTimeline", "Timeline", "percentile"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One prediction a simulated service asked for, and how it turned out."""

    at: float  # seconds since the traffic started
    latency_ms: float
    correct: bool | None  # None: a fallback (no model yet, or the platform failed)
    version: int | None
    cached: bool


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class TaskTimeline:
    """Everything recorded for one task."""

    task: str
    outcomes: list[Outcome] = field(default_factory=list)
    feedback_sent: int = 0
    errors: int = 0
    # (at, version): when the simulated client first got an answer from a new version.
    version_changes: list[tuple[float, int]] = field(default_factory=list)
    # (at, accuracy): the trainer's prequential accuracy of the champion, as polled.
    trainer_accuracy: list[tuple[float, float]] = field(default_factory=list)
    champion: int | None = None
    optimizer: dict[str, float] = field(default_factory=dict)
    drift_at: float | None = None  # when this task's ground truth changed

    def drift_point(self, planned: float) -> float:
        """When this task's concept changed; ``planned`` (the midpoint) until it has."""
        return planned if self.drift_at is None else self.drift_at

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.version is not None and (
            not self.version_changes or self.version_changes[-1][1] != outcome.version
        ):
            self.version_changes.append((outcome.at, outcome.version))

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.at < end]

    @staticmethod
    def accuracy_of(outcomes: Iterable[Outcome]) -> float | None:
        judged = [o.correct for o in outcomes if o.correct is not None]
        return sum(judged) / len(judged) if judged else None

    def accuracy(self, start: float, end: float) -> float | None:
        """Share of model predictions in ``[start, end)`` that matched the observed label."""
        return self.accuracy_of(self.between(start, end))

    def p99_ms(self, start: float = 0.0, end: float = math.inf) -> float | None:
        return percentile([o.latency_ms for o in self.between(start, end)], 99)

    def cache_hit_rate(self, start: float = 0.0, end: float = math.inf) -> float | None:
        served = [o for o in self.between(start, end) if o.version is not None]
        return sum(o.cached for o in served) / len(served) if served else None

    @property
    def predictions(self) -> int:
        return len(self.outcomes)

    @property
    def fallbacks(self) -> int:
        return sum(o.correct is None for o in self.outcomes)

    @property
    def versions_seen(self) -> list[int]:
        return [version for _, version in self.version_changes]

    def accuracy_series(self, *, step_s: float, window_s: float) -> list[tuple[float, float]]:
        """Rolling accuracy sampled every ``step_s`` over the trailing ``window_s``."""
        if not self.outcomes:
            return []
        end = self.outcomes[-1].at
        series = []
        at = step_s
        while at <= end + step_s:
            value = self.accuracy(max(0.0, at - window_s), at)
            if value is not None:
                series.append((at, value))
            at += step_s
        return series

    def recovery_s(self, drift_at: float, *, window_s: float = 5.0) -> float | None:
        """Seconds from the drift until rolling accuracy is back near its pre-drift level.

        "Near" is within 5 points of the accuracy over the ``window_s * 4`` seconds
        before the drift. None if it never got there (or there was nothing to compare).
        """
        before = self.accuracy(max(0.0, drift_at - 4 * window_s), drift_at)
        if before is None:
            return None
        for at, value in self.accuracy_series(step_s=1.0, window_s=window_s):
            if at >= drift_at + window_s and value >= before - 0.05:
                return at - drift_at
        return None


@dataclass
class Timeline:
    """Every task's timeline, plus the drift point."""

    drift_at: float  # the midpoint: each task's drift comes at or after it
    duration_s: float
    tasks: dict[str, TaskTimeline] = field(default_factory=dict)
    wall_start: float = 0.0  # time.time() when the traffic started
    # "AlertName task" -> seconds since start the optimizer was first seen firing it.
    seen_firing: dict[str, float] = field(default_factory=dict)

    def since_start(self, wall: float) -> float:
        return wall - self.wall_start

    def task(self, name: str) -> TaskTimeline:
        if name not in self.tasks:
            self.tasks[name] = TaskTimeline(name)
        return self.tasks[name]
