"""Alerts the trainer raises about a task's learning, as transitions on ``alerts``.

* ``TrainerChallengersRejected`` (warning) - the last ``REJECTION_STREAK`` challengers
  all lost the gate: the champion is going stale while the task keeps learning.
* ``ModelWorseThanBaseline`` (critical) - over the live window the champion is worse
  than predicting the previous label (accuracy below, or RMSE above, the no-change
  baseline): it has learned nothing useful about the features.

Only changes of state are emitted. The first evaluation of a task in a process also
emits its current state: a resolve after a restart still reaches the alerter, and
firing again is idempotent there, because the fingerprint is the same.
"""

from __future__ import annotations

from flywheel.events import Alert, AlertSeverity, AlertState, utc_now

__all__ = ["LearningAlerts"]

REJECTION_STREAK = 5
# Fewer scored events than this and "worse than the baseline" is mostly noise.
MIN_EVENTS_FOR_BASELINE = 500
SOURCE = "trainer"


class LearningAlerts:
    def __init__(self) -> None:
        self._state: dict[tuple[str, str], bool] = {}

    def evaluate(self, task: str, rejected_in_a_row: int, live: dict[str, float]) -> list[Alert]:
        scored = live.get("events_scored", 0.0)
        worse = scored >= MIN_EVENTS_FOR_BASELINE and (
            live.get("accuracy", 1.0) < live.get("baseline_accuracy", 0.0)
            or live.get("rmse", 0.0) > live.get("baseline_rmse", float("inf"))
        )
        checks = (
            (
                "TrainerChallengersRejected",
                rejected_in_a_row >= REJECTION_STREAK,
                AlertSeverity.WARNING,
                f"the last {rejected_in_a_row} challengers of {task} were worse than the champion",
            ),
            (
                "ModelWorseThanBaseline",
                worse,
                AlertSeverity.CRITICAL,
                f"the champion of {task} scores worse than the no-change baseline "
                f"over the last {scored:.0f} events",
            ),
        )
        out = []
        for name, firing, severity, summary in checks:
            if self._state.get((task, name)) == firing:
                continue
            self._state[(task, name)] = firing
            now = utc_now()
            out.append(
                Alert.build(
                    name,
                    state=AlertState.FIRING if firing else AlertState.RESOLVED,
                    severity=severity,
                    labels={"task": task, "service": SOURCE},
                    annotations={"summary": summary},
                    starts_at=now,
                    ends_at=None if firing else now,
                    source=SOURCE,
                )
            )
        return out

    def forget(self, task: str) -> None:
        """Re-emit ``task``'s state at its next evaluation (its last ones were not sent)."""
        for key in [k for k in self._state if k[0] == task]:
            del self._state[key]
