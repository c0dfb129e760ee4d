"""The closing summary: per task, what the drift did and how the loop answered."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.table import Table

from flywheel_demo.alerting import DRIFT_ALERT
from flywheel_demo.sinks import DeliveryLog
from flywheel_demo.timeline import TaskTimeline, Timeline, percentile

__all__ = ["DemoSummary", "TaskSummary", "percent", "short_task", "summarise"]

# Accuracy "before" is measured over this long before the drift, "after" over this
# long right after it, and "end" over the last stretch of the run.
BEFORE_S = 15.0
AFTER_S = 8.0
END_S = 10.0


@dataclass(frozen=True, slots=True)
class TaskSummary:
    task: str
    predictions: int
    feedback_sent: int
    fallbacks: int
    errors: int
    versions: int  # distinct model versions that answered
    first_version: int | None
    last_version: int | None
    drift_at: float | None  # seconds since the start; None: the run ended before it
    accuracy_before: float | None
    accuracy_after: float | None
    accuracy_end: float | None
    recovery_s: float | None
    p99_ms: float | None
    cache_hit_rate: float | None
    drift_alert_webhook_s: float | None  # seconds after the drift point
    drift_alert_smtp_s: float | None

    @classmethod
    def of(cls, line: TaskTimeline, timeline: Timeline, deliveries: DeliveryLog) -> TaskSummary:
        drift, end = line.drift_point(timeline.drift_at), timeline.duration_s
        versions = line.versions_seen

        def delivered(sink: str) -> float | None:
            """Seconds from the drift to this task's first drift alert at ``sink``."""
            times = [
                timeline.since_start(d.at) - drift
                for d in deliveries.all()
                if d.sink == sink and d.alertname == DRIFT_ALERT and d.task == line.task
                if d.status == "firing" and timeline.since_start(d.at) >= drift
            ]
            return min(times) if times else None

        return cls(
            task=line.task,
            predictions=line.predictions,
            feedback_sent=line.feedback_sent,
            fallbacks=line.fallbacks,
            errors=line.errors,
            versions=len(set(versions)),
            first_version=versions[0] if versions else None,
            last_version=versions[-1] if versions else None,
            drift_at=line.drift_at,
            accuracy_before=line.accuracy(max(0.0, drift - BEFORE_S), drift),
            accuracy_after=line.accuracy(drift, drift + AFTER_S),
            accuracy_end=line.accuracy(max(drift, end - END_S), end + 1),
            recovery_s=line.recovery_s(drift),
            p99_ms=line.p99_ms(),
            cache_hit_rate=line.cache_hit_rate(),
            drift_alert_webhook_s=delivered("webhook"),
            drift_alert_smtp_s=delivered("smtp"),
        )


@dataclass(frozen=True, slots=True)
class DemoSummary:
    tasks: list[TaskSummary]
    webhook_firing: int  # drift-alert notifications (firing) the webhook received
    smtp_firing: int
    resolved: int  # "resolved" notifications, both sinks
    before_drift: int  # firing drift alerts delivered before the drift point (false alarms)
    p99_ms: float | None

    @property
    def drift_alert_delivered(self) -> bool:
        """Some task's drift alert reached both the webhook and the SMTP sink."""
        return any(
            t.drift_alert_webhook_s is not None and t.drift_alert_smtp_s is not None
            for t in self.tasks
        )

    @property
    def ok(self) -> bool:
        """The loop worked: models served, feedback flowed, no task ended broken."""
        return bool(self.tasks) and all(
            t.feedback_sent > 0 and t.versions > 0 and t.errors == 0 for t in self.tasks
        )

    def table(self) -> Table:
        table = Table(
            title="Flywheel demo - summary",
            caption=SUMMARY_LEGEND,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1, 0, 0),
        )
        table.add_column("task", no_wrap=True)
        for header in SUMMARY_COLUMNS:
            table.add_column(header, justify="right", no_wrap=True)
        for t in self.tasks:
            table.add_row(
                short_task(t.task),
                f"{t.feedback_sent:,}",
                f"v{t.first_version}-v{t.last_version}" if t.versions else "none",
                "-" if t.drift_at is None else f"{t.drift_at:.1f}s",
                percent(t.accuracy_before),
                percent(t.accuracy_after),
                percent(t.accuracy_end),
                "-" if t.recovery_s is None else f"{t.recovery_s:.0f}s",
                "-" if t.p99_ms is None else f"{t.p99_ms:.0f} ms",
                percent(t.cache_hit_rate),
                f"{_after(t.drift_alert_webhook_s)}/{_after(t.drift_alert_smtp_s)}",
            )
        return table

    def lines(self) -> list[str]:
        """The headline numbers as plain sentences."""
        alerted = [
            short_task(t.task)
            for t in self.tasks
            if t.drift_alert_webhook_s is not None and t.drift_alert_smtp_s is not None
        ]
        p99 = "-" if self.p99_ms is None else f"{self.p99_ms:.1f} ms"
        return [
            f"events published: {sum(t.feedback_sent for t in self.tasks):,}; "
            f"model versions served: {sum(t.versions for t in self.tasks)}; "
            f"client-side p99 latency: {p99}",
            f"{DRIFT_ALERT} (firing) delivered: {self.webhook_firing} to the webhook, "
            f"{self.smtp_firing} by mail; {self.resolved} 'resolved' notifications; "
            f"{self.before_drift} before the drift",
            "drift alert reached both sinks for: " + (", ".join(alerted) or "no task this run"),
        ]


SUMMARY_COLUMNS = (
    "events",
    "models",
    "drift",
    "before",
    "after",
    "end",
    "recovery",
    "p99",
    "cache",
    "drift alert",
)
# Printed under the table: what the columns mean.
SUMMARY_LEGEND = (
    "accuracy before = 15 s before the task's drift, after = 8 s after it, end = last 10 s; "
    "recovery = back within 5 points; drift alert = seconds after the drift it reached "
    "the webhook / the mailbox"
)


def short_task(task: str) -> str:
    """``demo.oracle.knowledge-quality`` -> ``oracle.knowledge-quality``."""
    return task.removeprefix("demo.")


def percent(value: float | None) -> str:
    """``0.953`` -> ``95.3%``; ``-`` for no value."""
    return "-" if value is None else f"{value:.1%}"


def _after(value: float | None) -> str:
    return "-" if value is None else f"+{value:.1f}s"


def summarise(timeline: Timeline, deliveries: DeliveryLog) -> DemoSummary:
    tasks = [TaskSummary.of(line, timeline, deliveries) for line in timeline.tasks.values()]
    latencies = [o.latency_ms for line in timeline.tasks.values() for o in line.outcomes]
    drift = [d for d in deliveries.all() if d.alertname == DRIFT_ALERT]
    firing = [d for d in drift if d.status == "firing"]
    return DemoSummary(
        tasks=tasks,
        webhook_firing=sum(d.sink == "webhook" for d in firing),
        smtp_firing=sum(d.sink == "smtp" for d in firing),
        resolved=sum(d.status == "resolved" for d in drift),
        before_drift=sum(
            timeline.since_start(d.at) < timeline.task(d.task).drift_point(timeline.drift_at)
            for d in firing
            if d.task in timeline.tasks
        ),
        p99_ms=percentile(latencies, 99),
    )
