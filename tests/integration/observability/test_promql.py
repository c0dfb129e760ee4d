"""Every PromQL expression in the dashboards and alert rules returns data on a live loop,
and promtool accepts the Prometheus config and rules.

Alert rules are written ``<series> <comparison> <threshold>``: the full expression must
be valid, and the series side must return data (a healthy loop fires no alert, so the
whole expression is rightly empty). Grafana's ``$task`` variable is queried as ``.*``.
An expression that needs a service that cannot run yet is an expected failure (strict,
so it fails loudly once the service lands and the mark should go).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.observability.conftest import REPO, LiveLoop, runnable, wait_for_data

DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "deploy/prometheus/rules").glob("*.yml"))
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
_COMPARISON = re.compile(r"^(?P<series>.+?)\s+(?:==|!=|>=|<=|>|<)\s+-?[0-9.e+]+$", re.DOTALL)

# Which service's process must run for a series to exist.
_NEEDS = {
    "flywheel_ingest_": "stream_ingest",
    "flywheel_trainer_": "trainer",
    "flywheel_predictor_": "predictor",
    "flywheel_alerter_": "alerter",
    # The optimizer's prediction series come from what the predictor logs.
    "flywheel_optimizer_prediction_latency": "predictor",
    "flywheel_optimizer_throughput": "predictor",
    "flywheel_optimizer_cache_hit": "predictor",
    "flywheel_optimizer_live_accuracy": "predictor",
    "flywheel_optimizer_version_live": "predictor",
    "flywheel_optimizer_baseline": "predictor",
    "flywheel_optimizer_model_error": "predictor",
    "flywheel_optimizer_alerts_firing": "predictor",
    "flywheel_optimizer_consumer_lag": "stream_ingest",
}


def _dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$task", ".*")
                found.append((f"{path.stem}: {panel['title']} [{target['refId']}]", expr))
        for variable in dashboard.get("templating", {}).get("list", []):
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable.get("definition", ""))
            if match:
                found.append((f"{path.stem}: variable ${variable['name']}", match.group(1)))
    return found


def _rule_expressions() -> list[tuple[str, str]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                found.append((f"{path.stem}: {name}", rule["expr"]))
    return found


def _case(label: str, expr: str) -> object:
    missing = sorted(
        {pkg for prefix, pkg in _NEEDS.items() if prefix in expr and not runnable(pkg)}
    )
    marks = (
        [
            pytest.mark.xfail(
                strict=True, reason=f"{', '.join(missing)} cannot run yet (no __main__)"
            )
        ]
        if missing
        else []
    )
    return pytest.param(expr, id=label, marks=marks)


def test_promtool_accepts_config_and_rules(tmp_path: Path) -> None:
    config = subprocess.run(
        [PROMTOOL, "check", "config", str(REPO / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_every_dashboard_and_rule_expression_is_collected() -> None:
    assert DASHBOARDS and RULE_FILES
    assert len(_dashboard_expressions()) >= 15
    for label, expr in _rule_expressions():
        assert _COMPARISON.match(expr.strip()), f"{label}: not '<series> <op> <threshold>'"


@pytest.mark.parametrize("expr", [_case(label, expr) for label, expr in _dashboard_expressions()])
def test_dashboard_expression_returns_data(live_loop: LiveLoop, expr: str) -> None:
    result = wait_for_data(live_loop, expr, deadline=live_loop.ready_by)
    assert result, f"no data for {expr}\n{_diagnose(live_loop)}"


@pytest.mark.parametrize("expr", [_case(label, expr) for label, expr in _rule_expressions()])
def test_alert_rule_series_return_data(live_loop: LiveLoop, expr: str) -> None:
    live_loop.query(expr)  # the whole rule is valid PromQL
    match = _COMPARISON.match(expr.strip())
    assert match is not None
    result = wait_for_data(live_loop, match.group("series"), deadline=live_loop.ready_by)
    assert result, f"no data for {match.group('series')}\n{_diagnose(live_loop)}"


# The name each service's heartbeat carries (``service`` label of the optimizer's series),
# and whether the loop's traffic moves its ``requests_total`` (so it has an error ratio).
HEARTBEATS: dict[str, tuple[str, bool]] = {
    "stream_ingest": ("stream-ingest", True),
    "trainer": ("trainer", True),
    "predictor": ("predictor", True),
    "optimizer": ("optimizer", False),
    # Notifications are its requests: a few per group interval, not enough for a window.
    "alerter": ("alerter", False),
}
# Runnable, but no HeartbeatPublisher wired in yet.
NO_HEARTBEAT_YET: set[str] = set()


def _heartbeat_case(package: str, error_ratio: bool) -> object:
    marks = []
    if not runnable(package):
        marks.append(pytest.mark.xfail(strict=True, reason=f"{package} cannot run yet"))
    elif package in NO_HEARTBEAT_YET:
        marks.append(pytest.mark.xfail(strict=True, reason=f"{package} sends no heartbeat yet"))
    series = "service_error_ratio" if error_ratio else "service_rss_bytes"
    return pytest.param(package, error_ratio, id=f"{package}-{series}", marks=marks)


@pytest.mark.parametrize(
    ("package", "error_ratio"),
    [_heartbeat_case(pkg, False) for pkg in HEARTBEATS]
    + [_heartbeat_case(pkg, True) for pkg, (_, requests) in HEARTBEATS.items() if requests],
)
def test_memory_and_error_ratio_panels_cover_every_service(
    live_loop: LiveLoop, package: str, error_ratio: bool
) -> None:
    """The memory panel shows every service, not just the optimizer's own heartbeat;
    services that take requests also get ``request_errors_total / requests_total``."""
    service = HEARTBEATS[package][0]
    series = "service_error_ratio" if error_ratio else "service_rss_bytes"
    expr = f'flywheel_optimizer_{series}{{window="1m",service="{service}"}}'
    result = wait_for_data(live_loop, expr, deadline=live_loop.ready_by)
    assert result, f"no data for {expr}\n{_diagnose(live_loop)}"
    values = [float(r["value"][1]) for r in result]
    assert all(v > 0 for v in values) if not error_ratio else all(0 <= v <= 1 for v in values)


def _diagnose(loop: LiveLoop) -> str:
    targets = loop.query('up{job=~"flywheel-.*"}')["data"]["result"]
    health = {t["metric"]["job"]: t["value"][1] for t in targets}
    exited = {name: p.returncode for name, p in loop.processes.items() if p.poll() is not None}
    logs = "\n".join(f"--- {name}\n{loop.logs(name)}" for name in exited)
    return f"up: {health}; exited: {exited}; at {time.monotonic():.0f}\n{logs}"
