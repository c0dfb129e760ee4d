"""Concept-drift detection on each task's error stream, with river's detectors.

Every joined label gives one error (0/1 for classes, |error| for numbers); the task's
detector (ADWIN by default, or Page-Hinkley) sees them in order. A detection fires
``ModelDriftDetected`` for the task. Drift is an event, not a level, so the alert
resolves once the task has gone ``quiet_s`` seconds (event time) and at least
``min_samples_after`` further labels without another detection, or as soon as a new
champion is published for the task (the loop has reacted).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from river import drift

__all__ = ["DriftDetection", "DriftWatch"]

DetectorKind = Literal["adwin", "page_hinkley"]


@dataclass(frozen=True, slots=True)
class DriftDetection:
    task: str
    at: float
    detector: str
    samples: int
    error_before: float
    error_recent: float


@dataclass
class _TaskDrift:
    detector: Any
    samples: int = 0
    last_detection: float | None = None
    samples_since: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    total_error: float = 0.0


class DriftWatch:
    def __init__(
        self,
        *,
        detector: DetectorKind = "adwin",
        adwin_delta: float = 0.002,
        ph_threshold: float = 50.0,
        quiet_s: float = 600.0,
        min_samples_after: int = 100,
    ) -> None:
        self._kind = detector
        self._adwin_delta = adwin_delta
        self._ph_threshold = ph_threshold
        self.quiet_s = quiet_s
        self.min_samples_after = min_samples_after
        self._tasks: dict[str, _TaskDrift] = {}

    def _new_detector(self) -> Any:
        if self._kind == "adwin":
            return drift.ADWIN(delta=self._adwin_delta)  # type: ignore[no-untyped-call]
        # Errors only matter when they grow: a model getting better is no page.
        return drift.PageHinkley(threshold=self._ph_threshold, mode="up")

    def update(self, task: str, error: float, at: float) -> DriftDetection | None:
        state = self._tasks.get(task)
        if state is None:
            state = self._tasks[task] = _TaskDrift(self._new_detector())
        before = state.total_error / state.samples if state.samples else 0.0
        state.detector.update(error)
        state.samples += 1
        state.total_error += error
        state.recent.append(error)
        if state.last_detection is not None:
            state.samples_since += 1
        if not state.detector.drift_detected:
            return None
        state.last_detection = at
        state.samples_since = 0
        detection = DriftDetection(
            task=task,
            at=at,
            detector=self._kind,
            samples=state.samples,
            error_before=before,
            error_recent=sum(state.recent) / len(state.recent),
        )
        # Measure "before" from the change on: the old regime no longer describes the task.
        state.total_error = sum(state.recent)
        state.samples = len(state.recent)
        return detection

    def settled(self, now: float) -> list[str]:
        """Tasks whose last drift is old enough, with enough labels since, to resolve."""
        done = []
        for task, state in self._tasks.items():
            if (
                state.last_detection is not None
                and now - state.last_detection >= self.quiet_s
                and state.samples_since >= self.min_samples_after
            ):
                state.last_detection = None
                done.append(task)
        return done

    def reset(self, task: str) -> None:
        """A new champion: start the task's error stream afresh."""
        self._tasks.pop(task, None)
