"""Threshold rules: validation names the field; alerts fire after for_s and resolve once."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel.events import AlertSeverity, AlertState
from optimizer.alerts import AlertBook
from optimizer.rules import RuleEvaluator, RuleFile, ThresholdRule, load_rules
from optimizer.tracker import MetricSample
from tests.unit.optimizer.helpers import T0

RULES = """
rules:
  - name: LatencyHigh
    metric: latency_p99_ms
    window: 5m
    op: ">"
    threshold: 100
    for_s: 30
    min_samples: 10
    severity: critical
    labels: {team: ml}
    annotations: {summary: "p99 {value:.0f} ms over {threshold:.0f} ms on {task}"}
  - name: QueueDeep
    gauge: queue_depth
    window: 1m
    op: ">="
    threshold: 1000
"""


def p99(value: float, task: str = "t", samples: int = 50) -> MetricSample:
    return MetricSample("latency_p99_ms", "5m", value, task=task, samples=samples)


@pytest.fixture
def rules(tmp_path: Path) -> RuleFile:
    path = tmp_path / "rules.yml"
    path.write_text(RULES)
    return load_rules(path)


def test_rule_file_loads(rules: RuleFile) -> None:
    assert [r.name for r in rules.rules] == ["LatencyHigh", "QueueDeep"]
    assert rules.rules[0].severity is AlertSeverity.CRITICAL


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            "rules: [{name: X, metric: latency_p99_ms, op: '>', threshold: 1, window: 2m}]",
            "rules.0.window",
        ),
        ("rules: [{name: X, metric: latency_p99_ms, op: '!=', threshold: 1}]", "rules.0.op"),
        ("rules: [{name: X, metric: nope, op: '>', threshold: 1}]", "metric 'nope'"),
        ("rules: [{name: X, op: '>', threshold: 1}]", "exactly one of metric"),
        ("rules: [{name: 'bad name', metric: predictions, op: '>', threshold: 1}]", "rules.0.name"),
        (
            "rules: [{name: X, metric: predictions, op: '>', threshold: 1, colour: red}]",
            "rules.0.colour",
        ),
        ("rules: [{name: X, metric: predictions, op: '>', threshold: .nan}]", "rules.0.threshold"),
        ("rules: {", "rules file"),
    ],
)
def test_invalid_rules_name_the_field(tmp_path: Path, body: str, field: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_rules(path)


def test_duplicate_rules_are_refused() -> None:
    rule = {"name": "X", "metric": "predictions", "op": ">", "threshold": 1}
    with pytest.raises(ValueError, match="defined twice"):
        RuleFile.model_validate({"rules": [rule, rule]})


def test_fires_after_for_s_once_and_resolves_once(rules: RuleFile) -> None:
    book = AlertBook()
    evaluator = RuleEvaluator(rules, book)
    evaluator.evaluate([p99(150)], T0)
    evaluator.evaluate([p99(160)], T0 + 20)
    assert book.drain() == []  # pending: 20 s < for_s
    evaluator.evaluate([p99(170)], T0 + 30)
    evaluator.evaluate([p99(180)], T0 + 40)
    fired = book.drain()
    assert len(fired) == 1
    alert = fired[0]
    assert alert.state is AlertState.FIRING
    assert alert.labels == {"team": "ml", "task": "t", "window": "5m"}
    assert alert.annotations["summary"] == "p99 170 ms over 100 ms on t"
    evaluator.evaluate([p99(50)], T0 + 50)
    evaluator.evaluate([p99(40)], T0 + 60)
    resolved = book.drain()
    assert [a.state for a in resolved] == [AlertState.RESOLVED]
    assert resolved[0].fingerprint == alert.fingerprint
    assert resolved[0].ends_at is not None


def test_a_blip_shorter_than_for_s_never_fires(rules: RuleFile) -> None:
    book = AlertBook()
    evaluator = RuleEvaluator(rules, book)
    evaluator.evaluate([p99(150)], T0)
    evaluator.evaluate([p99(50)], T0 + 10)
    evaluator.evaluate([p99(150)], T0 + 20)
    evaluator.evaluate([p99(150)], T0 + 45)
    assert book.drain() == []


def test_thin_evidence_and_other_windows_are_ignored(rules: RuleFile) -> None:
    book = AlertBook()
    evaluator = RuleEvaluator(rules, book)
    for t in (0, 60):
        evaluator.evaluate(
            [p99(500, samples=3), MetricSample("latency_p99_ms", "1m", 500, "t", samples=99)],
            T0 + t,
        )
    assert book.drain() == []


def test_each_task_is_its_own_alert(rules: RuleFile) -> None:
    book = AlertBook()
    evaluator = RuleEvaluator(rules, book)
    for t in (0, 30):
        evaluator.evaluate([p99(150, "a"), p99(150, "b")], T0 + t)
    fired = book.drain()
    assert sorted(a.labels["task"] for a in fired) == ["a", "b"]
    assert len({a.fingerprint for a in fired}) == 2


def test_gauge_rule_on_service_heartbeats(rules: RuleFile) -> None:
    book = AlertBook()
    evaluator = RuleEvaluator(rules, book)
    deep = MetricSample("queue_depth", "1m", 5000, service="stream-ingest", samples=1)
    evaluator.evaluate([deep], T0)
    (alert,) = book.drain()
    assert alert.labels["service"] == "stream-ingest"


def test_a_series_that_disappears_is_resolved_as_stale(rules: RuleFile) -> None:
    book = AlertBook()
    evaluator = RuleEvaluator(rules, book, stale_s=120)
    evaluator.evaluate([p99(150)], T0)
    evaluator.evaluate([p99(150)], T0 + 30)
    assert len(book.drain()) == 1
    evaluator.evaluate([], T0 + 100)
    assert book.drain() == []
    evaluator.evaluate([], T0 + 150)
    (resolved,) = book.drain()
    assert resolved.state is AlertState.RESOLVED
    assert resolved.annotations["resolved_value"] == "no data"


def test_restored_alert_is_adopted_then_resolved(rules: RuleFile) -> None:
    first = AlertBook()
    evaluator = RuleEvaluator(rules, first)
    evaluator.evaluate([p99(150)], T0)
    evaluator.evaluate([p99(150)], T0 + 30)
    history = first.drain()
    # A restart: a new book learns what fired from the alerts topic.
    book = AlertBook()
    assert book.restore(history) == 1
    evaluator = RuleEvaluator(rules, book)
    evaluator.evaluate([p99(150)], T0 + 100)
    evaluator.evaluate([p99(150)], T0 + 130)
    assert book.drain() == []  # still firing: nothing new to say
    evaluator.evaluate([p99(10)], T0 + 140)
    (resolved,) = book.drain()
    assert resolved.fingerprint == history[0].fingerprint


def test_rule_rejects_unknown_ops_at_construction() -> None:
    with pytest.raises(ValueError, match="op"):
        ThresholdRule.model_validate(
            {"name": "X", "metric": "predictions", "op": "==", "threshold": 1}
        )


def test_restored_alert_whose_condition_cleared_while_down_resolves(rules: RuleFile) -> None:
    first = AlertBook()
    evaluator = RuleEvaluator(rules, first)
    evaluator.evaluate([p99(150)], T0)
    evaluator.evaluate([p99(150)], T0 + 30)
    book = AlertBook()
    book.restore(first.drain())
    RuleEvaluator(rules, book).evaluate([p99(20)], T0 + 100)
    (resolved,) = book.drain()
    assert resolved.state is AlertState.RESOLVED


def test_restored_alert_whose_series_never_returns_resolves_as_stale(rules: RuleFile) -> None:
    first = AlertBook()
    evaluator = RuleEvaluator(rules, first)
    evaluator.evaluate([p99(150, task="gone")], T0)
    evaluator.evaluate([p99(150, task="gone")], T0 + 30)
    book = AlertBook()
    book.restore(first.drain())
    evaluator = RuleEvaluator(rules, book, stale_s=100)
    evaluator.evaluate([], T0 + 1000)
    evaluator.evaluate([], T0 + 1050)
    assert book.drain() == []
    evaluator.evaluate([], T0 + 1100)
    (resolved,) = book.drain()
    assert resolved.annotations["resolved_value"] == "no data"


def test_rule_label_keys_must_be_label_names(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        "rules: [{name: X, metric: predictions, op: '>', threshold: 1, labels: {'a-b': c}}]"
    )
    with pytest.raises(ConfigError, match=r"rules\.0\.labels\.a-b"):
        load_rules(path)
