"""Summary, chart and live view from one synthetic run (no stack)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from flywheel_demo.alerting import DRIFT_ALERT
from flywheel_demo.chart import write_chart
from flywheel_demo.platform import PlatformPoller, task_window_values
from flywheel_demo.simulator import Clock
from flywheel_demo.sinks import Delivery, DeliveryLog
from flywheel_demo.summary import summarise
from flywheel_demo.timeline import Outcome, Timeline
from flywheel_demo.view import DemoView, plain_lines

WALL_START = 1_800_000_000.0
TASKS = ("demo.daisy-chain.task-success", "demo.ai-gm.player-engagement")


def synthetic_run() -> tuple[Timeline, DeliveryLog]:
    """60 s at 20/s per task: models from 5 s, drift at 31 s, re-learned by 45 s; a drift
    alert for the first task reaches both sinks, one 'resolved' follows."""
    timeline = Timeline(drift_at=30.0, duration_s=60.0, wall_start=WALL_START)
    for task in TASKS:
        line = timeline.task(task)
        line.drift_at = 31.0
        line.feedback_sent = 1_200
        for i in range(1_200):
            at = i / 20
            if at < 5:
                line.record(Outcome(at, 2.0, None, None, False))
                continue
            version = 1 + int((at - 5) // 8)
            wrong = 31 <= at < 45 and i % 2 == 0
            line.record(Outcome(at, 2.0 + i % 100, not wrong and i % 25 != 0, version, i % 3 == 0))
    deliveries = DeliveryLog()
    for sink, offset in (("webhook", 1.5), ("smtp", 1.7)):
        deliveries.add(Delivery(sink, WALL_START + 31 + offset, DRIFT_ALERT, TASKS[0], "firing"))
    deliveries.add(Delivery("webhook", WALL_START + 40, DRIFT_ALERT, TASKS[0], "resolved"))
    return timeline, deliveries


def test_summary_numbers() -> None:
    timeline, deliveries = synthetic_run()
    summary = summarise(timeline, deliveries)
    daisy, gm = summary.tasks
    assert daisy.task == TASKS[0]
    assert daisy.predictions == 1_200 and daisy.fallbacks == 100 and daisy.errors == 0
    assert daisy.versions == 7 and (daisy.first_version, daisy.last_version) == (1, 7)
    assert daisy.drift_at == 31.0
    assert daisy.accuracy_before == pytest.approx(0.96, abs=0.01)
    assert daisy.accuracy_after == pytest.approx(0.48, abs=0.02)
    assert daisy.accuracy_end == pytest.approx(0.96, abs=0.01)
    assert daisy.recovery_s is not None and 13 <= daisy.recovery_s <= 19
    assert daisy.drift_alert_webhook_s == pytest.approx(1.5)
    assert daisy.drift_alert_smtp_s == pytest.approx(1.7)
    assert gm.drift_alert_webhook_s is None and gm.drift_alert_smtp_s is None
    assert daisy.cache_hit_rate == pytest.approx(1 / 3, abs=0.01)
    assert summary.webhook_firing == 1 and summary.smtp_firing == 1 and summary.resolved == 1
    assert summary.before_drift == 0
    assert summary.drift_alert_delivered
    assert summary.ok


def test_summary_is_not_ok_when_a_task_never_got_a_model() -> None:
    timeline, deliveries = synthetic_run()
    timeline.task("demo.oracle.knowledge-quality").feedback_sent = 10
    assert not summarise(timeline, deliveries).ok


def test_summary_renders_a_table_and_sentences() -> None:
    timeline, deliveries = synthetic_run()
    summary = summarise(timeline, deliveries)
    console = Console(record=True, width=160)
    console.print(summary.table())
    text = console.export_text()
    assert "daisy-chain.task-success" in text and "+1.5s/+1.7s" in text
    lines = summary.lines()
    assert "events published: 2,400" in lines[0]
    assert "1 to the webhook, 1 by mail; 1 'resolved'" in lines[1]
    assert lines[2] == "drift alert reached both sinks for: daisy-chain.task-success"


def test_chart_is_a_png(tmp_path: Path) -> None:
    timeline, deliveries = synthetic_run()
    path = write_chart(timeline, deliveries, tmp_path / "sub" / "demo.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # two panels, three series: not a blank canvas


def test_live_view_and_plain_lines_show_every_task_and_the_alerts() -> None:
    timeline, deliveries = synthetic_run()
    clock = Clock(start=0.0, drift_at_s=30.0, duration_s=60.0, wall_start=WALL_START)
    poller = PlatformPoller("http://p", "http://o", timeline, clock, list(TASKS))
    poller.firing = [f"{DRIFT_ALERT} {TASKS[0]}"]
    console = Console(record=True, width=180)
    console.print(DemoView(timeline, clock, poller, deliveries).render())
    text = console.export_text()
    for task in TASKS:
        assert task.removeprefix("demo.") in text
    assert "delivered: webhook 2  smtp 1" in text
    assert f"firing at the optimizer: {DRIFT_ALERT} {TASKS[0]}" in text
    plain = plain_lines(timeline, clock, deliveries)
    assert len(plain) == 1 + len(TASKS) + 1
    assert plain[-1].startswith("  alerts delivered: webhook 2, smtp 1")


def test_optimizer_rows_keep_task_level_values_only() -> None:
    rows = [
        {"name": "latency_p99_ms", "task": "a", "value": 3.5, "labels": {}},
        {"name": "live_accuracy", "task": "a", "value": 0.9, "labels": {"version": "4"}},
        {"name": "live_accuracy", "task": "a", "value": 0.8, "labels": {}},
        {"name": "rss_bytes", "task": None, "service": "trainer", "value": 1.0, "labels": {}},
        {"name": "cache_hit_rate", "task": "b", "value": None, "labels": {}},
    ]
    assert task_window_values(rows) == {"a": {"latency_p99_ms": 3.5, "live_accuracy": 0.8}}
