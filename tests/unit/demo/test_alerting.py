"""The demo alerter's routing: the drift alert to the webhook and the mail sink."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerter.routing import load_config
from flywheel_demo.alerting import DRIFT_ALERT, HOOK_SECRET_ENV, write_alerter_config


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOOK_SECRET_ENV, "a-secret-of-enough-length")
    return write_alerter_config(tmp_path / "alerter.yaml", "http://127.0.0.1:9/alerts", 2525)


def test_the_file_is_a_valid_alerter_config_without_the_secret(config_file: Path) -> None:
    config = load_config(config_file)  # the alerter's own loader: errors would name the field
    assert "a-secret-of-enough-length" not in config_file.read_text()
    assert [r.name for r in config.receivers] == ["demo-log", "demo-webhook", "demo-mail"]
    assert [str(n) for n in config.allowed_networks()] == ["127.0.0.1/32"]


def test_drift_alerts_reach_both_sinks_and_nothing_else_does(config_file: Path) -> None:
    tree = load_config(config_file).routing_tree()
    drift = tree.match({"alertname": DRIFT_ALERT, "task": "demo.ai-gm.player-engagement"})
    assert [route.receiver for route in drift] == ["demo-webhook", "demo-mail"]
    assert all(route.group_wait == 0 for route in drift)
    other = tree.match({"alertname": "LiveAccuracyLow", "task": "demo.ai-gm.player-engagement"})
    assert [route.receiver for route in other] == ["demo-log"]
