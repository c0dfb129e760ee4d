"""Plain-text pieces every receiver formats a notification from."""

from __future__ import annotations

from alerter.state import NotificationIntent
from flywheel.events import Alert, AlertState

__all__ = ["alert_summary", "common_labels", "state_word", "title"]


def title(intent: NotificationIntent) -> str:
    """``[FIRING:2] TaskAccuracyLow task=daisy`` - short enough for a subject line."""
    firing = intent.firing_alerts()
    status = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    names = sorted({a.name for a in intent.alerts}) or ["(no alerts)"]
    labels = " ".join(f"{k}={v}" for k, v in intent.group_labels.items() if v)
    text = f"[{status}] {', '.join(names)} {labels}".strip()
    # Headers and subjects must stay on one line whatever a label contains.
    return " ".join(text.split())[:200]


def alert_summary(alert: Alert) -> str:
    return (
        alert.annotations.get("summary")
        or alert.annotations.get("description")
        or f"{alert.name} is {alert.state.value}"
    )


def common_labels(alerts: list[Alert]) -> dict[str, str]:
    if not alerts:
        return {}
    first = alerts[0].labels
    return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in alerts[1:])}


def state_word(alert: Alert) -> str:
    return "FIRING" if alert.state is AlertState.FIRING else "RESOLVED"
