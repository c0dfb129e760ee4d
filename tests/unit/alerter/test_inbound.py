"""Alertmanager webhook v4 and Grafana payloads become Flywheel alerts."""

from __future__ import annotations

import pytest

from alerter.inbound import InboundError, to_alerts
from flywheel.events import AlertSeverity, AlertState, alert_fingerprint

ALERTMANAGER_V4 = {
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "flywheel",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "severity": "critical", "job": "predictor"},
            "annotations": {"summary": "p99 over budget"},
            "startsAt": "2026-11-26T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "c6eadffa33fcdf37",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DiskFull", "severity": "warning"},
            "annotations": {},
            "startsAt": "2026-11-26T09:00:00Z",
            "endsAt": "2026-11-26T09:30:00Z",
        },
    ],
}

GRAFANA = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "title": "[FIRING:1]",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "annotations": {"summary": "zone us-1"},
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://grafana/silence",
            "values": {"B": 44.2, "C": 1},
        }
    ],
}


def test_alertmanager_v4() -> None:
    firing, resolved = to_alerts(ALERTMANAGER_V4, source="alertmanager")
    assert firing.name == "HighLatency"
    assert firing.severity is AlertSeverity.CRITICAL
    assert firing.state is AlertState.FIRING
    assert firing.ends_at is None
    assert firing.labels == {"severity": "critical", "job": "predictor"}
    assert firing.fingerprint == alert_fingerprint("HighLatency", firing.labels)
    assert resolved.state is AlertState.RESOLVED
    assert resolved.ends_at is not None
    assert resolved.source == "alertmanager"


def test_grafana_names_with_spaces_become_label_safe() -> None:
    [alert] = to_alerts(GRAFANA, source="grafana")
    assert alert.name == "High_memory_usage"
    assert alert.severity is AlertSeverity.INFO
    assert alert.starts_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts.0.labels.alertname"),
        (lambda p: p["alerts"][0].update(status="pending"), "alerts.0.status"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0]["labels"].update({"bad-label": "x"}), "alerts.0.labels"),
    ],
)
def test_bad_payloads_name_the_field(mutate: object, field: str) -> None:
    import copy

    payload = copy.deepcopy(ALERTMANAGER_V4)
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(InboundError) as caught:
        to_alerts(payload, source="alertmanager")
    assert caught.value.field.startswith(field)
