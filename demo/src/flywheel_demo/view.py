"""The live terminal view (rich), or periodic plain lines when stdout is not a terminal.

One row per simulated service: traffic, the champion version, accuracy as the client
saw it over the last 10 s and as the trainer measured it (prequential), client-side
p99 latency, the predictor's cache hit rate, then the alerts: firing at the optimizer
and delivered to the webhook and the SMTP sink.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flywheel_demo.alerting import DRIFT_ALERT
from flywheel_demo.platform import PlatformPoller
from flywheel_demo.simulator import Clock
from flywheel_demo.sinks import DeliveryLog
from flywheel_demo.summary import percent, short_task
from flywheel_demo.timeline import TaskTimeline, Timeline

__all__ = ["DemoView", "plain_lines"]

RECENT_S = 10.0
COLUMNS = (
    "events",
    "ev/s",
    "champion",
    "versions",
    f"accuracy {RECENT_S:.0f}s",
    "trainer acc.",
    f"p99 {RECENT_S:.0f}s",
    "cache hits",
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def phase(clock: Clock, timeline: Timeline, now: float) -> str:
    if now < clock.drift_at_s:
        return f"learning the first concept; drift in {clock.drift_at_s - now:.0f}s"
    drifted = [line for line in timeline.tasks.values() if line.drift_at is not None]
    if len(drifted) < len(timeline.tasks):
        return f"concept drift under way ({len(drifted)}/{len(timeline.tasks)} services)"
    return "the world changed: the loop is re-learning"


@dataclass(frozen=True, slots=True)
class TaskRow:
    """What the view shows for one task at one moment."""

    task: str
    events: int
    rate: float
    champion: str
    versions: int
    accuracy: float | None
    trainer_accuracy: float | None
    p99_ms: float | None
    cache_hit_rate: float | None

    @classmethod
    def of(cls, line: TaskTimeline, now: float) -> TaskRow:
        start = max(0.0, now - RECENT_S)
        recent = line.between(start, now + 1)
        return cls(
            task=line.task,
            events=line.feedback_sent,
            rate=len(recent) / max(1.0, min(RECENT_S, now)),
            champion="-" if line.champion is None else f"v{line.champion}",
            versions=len(set(line.versions_seen)),
            accuracy=line.accuracy_of(recent),
            trainer_accuracy=line.trainer_accuracy[-1][1] if line.trainer_accuracy else None,
            p99_ms=line.p99_ms(start, now + 1),
            cache_hit_rate=line.cache_hit_rate(start, now + 1),
        )


def plain_lines(timeline: Timeline, clock: Clock, deliveries: DeliveryLog) -> list[str]:
    """The view as plain text lines (CI logs, pipes)."""
    now = clock.now()
    lines = [f"[{now:5.1f}s] {phase(clock, timeline, now)}"]
    for line in timeline.tasks.values():
        row = TaskRow.of(line, now)
        lines.append(
            f"  {row.task:<36} events {row.events:>6}  model {row.champion:>4}  "
            f"acc {percent(row.accuracy):>6} (trainer {percent(row.trainer_accuracy)})  "
            f"p99 {_ms(row.p99_ms)}  cache {percent(row.cache_hit_rate)}"
        )
    lines.append(
        f"  alerts delivered: webhook {deliveries.count('webhook', DRIFT_ALERT)}, "
        f"smtp {deliveries.count('smtp', DRIFT_ALERT)} ({DRIFT_ALERT})"
    )
    return lines


class DemoView:
    """Render the demo's state; ``live`` picks rich's Live view or plain lines."""

    def __init__(
        self,
        timeline: Timeline,
        clock: Clock,
        poller: PlatformPoller,
        deliveries: DeliveryLog,
    ) -> None:
        self.timeline = timeline
        self.clock = clock
        self.poller = poller
        self.deliveries = deliveries

    def render(self) -> Group:
        now = self.clock.now()
        table = Table(expand=True, title=None)
        table.add_column("service.task", no_wrap=True)
        for column in COLUMNS:
            table.add_column(column, justify="right")
        for line in self.timeline.tasks.values():
            row = TaskRow.of(line, now)
            table.add_row(
                short_task(row.task),
                f"{row.events:,}",
                f"{row.rate:.0f}",
                row.champion,
                str(row.versions),
                _accuracy_text(row.accuracy),
                percent(row.trainer_accuracy),
                _ms(row.p99_ms),
                percent(row.cache_hit_rate),
            )
        progress = min(1.0, now / self.clock.duration_s)
        bar_width = 40
        filled = int(progress * bar_width)
        drift = self.clock.drift_at_s
        drift_mark = int(drift / self.clock.duration_s * bar_width)
        bar = Text()
        for i in range(bar_width):
            mark = "|" if i == drift_mark else ("=" if i < filled else "-")
            bar.append(mark, style="bold red" if i == drift_mark else "cyan")
        status = Text.assemble(
            (f"{now:5.1f}s / {self.clock.duration_s:.0f}s  ", "bold"),
            bar,
            "  ",
            (phase(self.clock, self.timeline, now), "green" if now < drift else "yellow"),
        )
        return Group(
            Panel(status, title="Flywheel demo", border_style="blue"),
            table,
            Panel(self._alerts(), title="alerts", border_style="red"),
        )

    def _alerts(self) -> Text:
        text = Text()
        firing = ", ".join(self.poller.firing) or "none"
        text.append(f"firing at the optimizer: {firing}\n")
        text.append(
            f"delivered: webhook {self.deliveries.count('webhook')}  "
            f"smtp {self.deliveries.count('smtp')}\n",
            style="bold",
        )
        for delivery in self.deliveries.all()[-6:]:
            at = self.clock.at_wall(delivery.at)
            text.append(
                f"  {at:5.1f}s  {delivery.sink:<7} {delivery.status:<8} "
                f"{delivery.alertname} {delivery.task}\n"
            )
        return text


def _accuracy_text(value: float | None) -> Text:
    if value is None:
        return Text("-")
    style = "green" if value >= 0.85 else "yellow" if value >= 0.7 else "bold red"
    return Text(f"{value:.1%}", style=style)
