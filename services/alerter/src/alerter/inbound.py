"""Turning Alertmanager (webhook v4) and Grafana webhook payloads into Flywheel alerts,
so the alerter can sit behind an existing Prometheus or Grafana.

Both senders post ``{"status", "receiver", "alerts": [{"status", "labels",
"annotations", "startsAt", "endsAt", "fingerprint", ...}], ...}``; Grafana adds
``orgId``, ``title``, ``values`` and URLs. Unknown fields are ignored (the senders add
fields over time); a field we need that is missing or wrong is refused with its path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.events import Alert, AlertSeverity, AlertState

__all__ = ["InboundError", "WebhookPayload", "to_alerts"]

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_SEVERITY = {
    "critical": AlertSeverity.CRITICAL,
    "page": AlertSeverity.CRITICAL,
    "error": AlertSeverity.CRITICAL,
    "high": AlertSeverity.CRITICAL,
    "warning": AlertSeverity.WARNING,
    "warn": AlertSeverity.WARNING,
    "medium": AlertSeverity.WARNING,
}
ANNOTATION_LIMIT = 4_096


class InboundError(ValueError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WebhookAlert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None


class WebhookPayload(_Lenient):
    version: str | None = None
    status: Literal["firing", "resolved"] | None = None
    alerts: list[WebhookAlert] = Field(max_length=10_000)


def alert_name(raw: str) -> str:
    """A label-safe alert name (Grafana allows spaces: "High memory usage")."""
    name = _NAME_CHARS.sub("_", raw.strip()) or "unnamed"
    if not (name[0].isalpha() or name[0] == "_"):
        name = "_" + name
    return name[:64]


def _clip(text: str) -> str:
    return text if len(text) <= ANNOTATION_LIMIT else text[: ANNOTATION_LIMIT - 1] + "…"


def to_alerts(raw: Any, *, source: Literal["alertmanager", "grafana"]) -> list[Alert]:
    """Validate a webhook body and convert it; :class:`InboundError` names the bad field."""
    try:
        payload = WebhookPayload.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise InboundError(first["msg"], field=field) from exc
    alerts = []
    for i, item in enumerate(payload.alerts):
        labels = dict(item.labels)
        raw_name = labels.pop("alertname", None)
        if not raw_name:
            raise InboundError("missing", field=f"alerts.{i}.labels.alertname")
        severity = _SEVERITY.get(labels.get("severity", "").lower(), AlertSeverity.INFO)
        ends_at = item.endsAt if item.endsAt and item.endsAt > _ZERO_TIME else None
        state = AlertState.RESOLVED if item.status == "resolved" else AlertState.FIRING
        try:
            alert = Alert.build(
                alert_name(raw_name),
                state=state,
                severity=severity,
                labels=labels,
                annotations={k: _clip(v) for k, v in item.annotations.items()},
                starts_at=item.startsAt,
                ends_at=ends_at if state is AlertState.RESOLVED else None,
                source=source,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InboundError(first["msg"], field=f"alerts.{i}.{where}") from exc
        alerts.append(alert)
    return alerts
