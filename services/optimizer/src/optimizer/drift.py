"""Concept-drift detection on each task's error stream, with river's detectors.

Every joined label gives one error (0/1 for classes, |error| for numbers); the task's
detector (ADWIN by default, or Page-Hinkley) sees them in order. A detection fires
``ModelDriftDetected`` for the task when the error *rose*. Drift is an event, not a
level, so the alert resolves once the task has gone ``quiet_s`` seconds (event time)
and at least ``min_samples_after`` further labels without another detection, or as
soon as a new champion is published for the task (the loop has reacted).

**One stream per task, kept across promotions.** The stream is the error of what the
task's callers were served, whichever champion version served it, not one stream per
version:

* Drift is a change of the world (the concept), not of a model. With a fast loop the
  trainer publishes a champion every flush interval (seconds), so a per-version stream
  (or one restarted at each promotion, as this module once did) holds one interval of
  labels: a change is judged against almost no baseline and then forgotten, and a
  gradual drift spread over several versions is never seen at all.
* Labels arrive late: the labels joined just after a promotion mostly judge the
  previous version's answers. A per-task stream takes them in arrival order and needs
  no bookkeeping of which version is "current".
* What a promotion can do to the stream is bounded. The trainer's gate only promotes a
  challenger whose loss on unseen events is not worse than the champion's (within its
  ``promotion_tolerance``, 2 % relative by default), so a routine promotion leaves the
  error level or lowers it. A lower error is no page: Page-Hinkley runs in ``mode="up"``
  and an ADWIN detection (ADWIN is two-sided) counts only if its estimate after the cut
  is above the one before; an improvement just restarts the baseline. A champion that
  does raise the served error (an operator's rollback, a gate fooled by a small batch)
  raises what users get, and paging on that is right; the alert names the version.

Only a promotion that answers an *open* drift restarts the task's detector: the alert
resolves and the detector learns the post-drift level afresh from the loop's answer on,
instead of from the detection (river's detectors restart themselves there, when the
errors of the old champion on the new world are still arriving).
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

    def rebase(self) -> None:
        """Measure "before" from now on: the old regime no longer describes the task."""
        self.total_error = sum(self.recent)
        self.samples = len(self.recent)


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
        estimate_before = self._estimate(state.detector)
        state.detector.update(error)
        state.samples += 1
        state.total_error += error
        state.recent.append(error)
        if state.last_detection is not None:
            state.samples_since += 1
        if not state.detector.drift_detected:
            return None
        if not self._rose(state.detector, estimate_before):
            # ADWIN saw the error fall (a better champion): a new baseline, not a page.
            state.rebase()
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
        state.rebase()
        return detection

    def _estimate(self, detector: Any) -> float | None:
        return float(detector.estimation) if self._kind == "adwin" else None

    def _rose(self, detector: Any, estimate_before: float | None) -> bool:
        if estimate_before is None:
            return True  # Page-Hinkley in mode "up" only detects rises
        # On a detection ADWIN has just dropped the old part of its window: what is left
        # is the new regime, and its mean against the whole window's says which way.
        return float(detector.estimation) > estimate_before

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

    def is_open(self, task: str) -> bool:
        state = self._tasks.get(task)
        return state is not None and state.last_detection is not None

    def promoted(self, task: str) -> bool:
        """A new champion for ``task``; True when it answers an open drift.

        A routine promotion keeps the task's detector (a drift spread over several
        champions still adds up). One that follows an open drift is the loop's answer:
        the drift is over, and the detector restarts on the post-drift error level.
        """
        if not self.is_open(task):
            return False
        del self._tasks[task]
        return True
