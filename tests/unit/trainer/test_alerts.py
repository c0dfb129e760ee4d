"""Learning alerts: transitions only, current state re-sent after a restart or a failure."""

from __future__ import annotations

from flywheel.events import AlertState
from trainer.alerts import REJECTION_STREAK, LearningAlerts

GOOD = {"accuracy": 0.9, "baseline_accuracy": 0.5, "events_scored": 1_000.0}
BAD = {"accuracy": 0.4, "baseline_accuracy": 0.5, "events_scored": 1_000.0}


def test_first_evaluation_states_everything_then_only_changes() -> None:
    alerts = LearningAlerts()
    first = alerts.evaluate("t", 0, GOOD)
    assert {(a.name, a.state) for a in first} == {
        ("TrainerChallengersRejected", AlertState.RESOLVED),
        ("ModelWorseThanBaseline", AlertState.RESOLVED),
    }
    assert alerts.evaluate("t", 1, GOOD) == []
    fired = alerts.evaluate("t", REJECTION_STREAK, BAD)
    assert {(a.name, a.state) for a in fired} == {
        ("TrainerChallengersRejected", AlertState.FIRING),
        ("ModelWorseThanBaseline", AlertState.FIRING),
    }
    assert alerts.evaluate("t", REJECTION_STREAK + 1, BAD) == []
    resolved = alerts.evaluate("t", 0, GOOD)
    assert all(a.state is AlertState.RESOLVED and a.ends_at for a in resolved)
    assert {a.fingerprint for a in resolved} == {a.fingerprint for a in fired}


def test_too_few_events_never_count_as_worse_than_the_baseline() -> None:
    alerts = LearningAlerts()
    out = alerts.evaluate("t", 0, {**BAD, "events_scored": 100.0})
    assert all(a.state is AlertState.RESOLVED for a in out)
    regression = alerts.evaluate(
        "r", 0, {"rmse": 2.0, "baseline_rmse": 1.0, "events_scored": 600.0}
    )
    assert ("ModelWorseThanBaseline", AlertState.FIRING) in {(a.name, a.state) for a in regression}


def test_forget_resends_the_current_state() -> None:
    alerts = LearningAlerts()
    alerts.evaluate("t", 0, BAD)
    alerts.forget("t")
    again = alerts.evaluate("t", 0, BAD)
    assert ("ModelWorseThanBaseline", AlertState.FIRING) in {(a.name, a.state) for a in again}
