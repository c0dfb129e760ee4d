"""Settings refuse unsafe values naming the field; HTTP answers from the service view."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from flywheel.events import Alert
from optimizer.advice import Recommendation
from optimizer.config import Settings
from optimizer.http import build_app
from optimizer.rules import load_rules
from optimizer.service import default_rules_path
from optimizer.tracker import MetricSample


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FLYWHEEL_"):
            monkeypatch.delenv(name)


def test_defaults_match_the_stack_ports() -> None:
    settings = Settings()
    assert settings.optimizer_port == 19104
    assert settings.optimizer_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"FLYWHEEL_SLOT_S": "7"}, "slot_s"),
        ({"FLYWHEEL_OPTIMIZER_PORT": "0"}, "optimizer_port"),
        ({"FLYWHEEL_OPTIMIZER_RULES_FILE": "/nonexistent/rules.yml"}, "optimizer_rules_file"),
        ({"FLYWHEEL_TICK_S": "100", "FLYWHEEL_RULE_STALE_S": "50"}, "rule_stale_s"),
        ({"FLYWHEEL_DRIFT_DETECTOR": "magic"}, "drift_detector"),
    ],
)
def test_unsafe_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=field):
        Settings()


def test_shipped_rules_are_valid() -> None:
    rules = load_rules(Path(str(default_rules_path())))
    assert {r.name for r in rules.rules} >= {"PredictionLatencyHigh", "LiveAccuracyLow"}


class FakeView:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        Counter("flywheel_optimizer_test", "a counter", registry=self.registry).inc()
        self.ready = False

    def healthy(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, {"tasks": ["t"]}

    def recommendations(self) -> list[Recommendation]:
        return [
            Recommendation(
                kind="cache_not_paying",
                target="t",
                summary="low",
                action="off",
                evidence={"hit_rate": 0.01},
                since=datetime(2026, 1, 1, tzinfo=UTC),
            )
        ]

    def firing_alerts(self) -> list[Alert]:
        return []

    def samples(self) -> list[MetricSample]:
        return [
            MetricSample("predictions", "1m", 5, task="t", samples=5),
            MetricSample("predictions", "5m", 9, task="t", samples=9),
            MetricSample("predictions", "1m", 2, task="u", samples=2),
        ]


async def test_http_surface() -> None:
    view = FakeView()
    transport = httpx.ASGITransport(app=build_app(view))
    async with httpx.AsyncClient(transport=transport, base_url="http://optimizer") as client:
        await _check(client, view)


async def _check(client: httpx.AsyncClient, view: FakeView) -> None:
    assert (await client.get("/healthz")).status_code == 503
    view.ready = True
    assert (await client.get("/healthz")).json() == {"status": "ok", "tasks": ["t"]}
    assert "flywheel_optimizer_test_total 1.0" in (await client.get("/metrics")).text
    recs = (await client.get("/v1/recommendations")).json()
    assert recs["count"] == 1
    assert recs["recommendations"][0]["evidence"] == {"hit_rate": 0.01}
    assert (await client.get("/v1/alerts")).json() == {"count": 0, "alerts": []}
    rows = (await client.get("/v1/metrics", params={"task": "t", "window": "1m"})).json()["metrics"]
    assert [(r["task"], r["window"], r["value"]) for r in rows] == [("t", "1m", 5)]
    bad = await client.get("/v1/metrics", params={"window": "2m"})
    assert bad.status_code == 422
    assert "window" in bad.text
