"""The closing PNG: accuracy per task over time, model versions, the drift, the alerts.

Top: each task's accuracy as its client saw it (rolling 5 s), dots where a new model
version started answering, each task's drift point (dashed, in its colour), and where
the drift alert reached the sinks. Bottom: the champion version each client was served, as steps.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from flywheel_demo.alerting import DRIFT_ALERT
from flywheel_demo.sinks import DeliveryLog
from flywheel_demo.summary import short_task
from flywheel_demo.timeline import Timeline

__all__ = ["write_chart"]

ROLLING_S = 5.0
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")


def write_chart(timeline: Timeline, deliveries: DeliveryLog, path: Path) -> Path:
    """Draw the chart into ``path`` (PNG) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    for index, line in enumerate(timeline.tasks.values()):
        colour = COLOURS[index % len(COLOURS)]
        series = line.accuracy_series(step_s=1.0, window_s=ROLLING_S)
        if series:
            xs, ys = zip(*series, strict=True)
            top.plot(xs, ys, color=colour, linewidth=1.6, label=short_task(line.task))
        changes = line.version_changes
        if changes:
            marks = [(at, line.accuracy(max(0.0, at - ROLLING_S), at + 0.5)) for at, _ in changes]
            shown = [(at, acc) for at, acc in marks if acc is not None]
            if shown:
                mx, my = zip(*shown, strict=True)
                top.scatter(mx, my, color=colour, s=14, zorder=3)
            steps_x = [at for at, _ in changes] + [timeline.duration_s]
            steps_y = [version for _, version in changes] + [changes[-1][1]]
            bottom.step(steps_x, steps_y, where="post", color=colour, label=short_task(line.task))
    for index, line in enumerate(timeline.tasks.values()):
        if line.drift_at is not None:
            colour = COLOURS[index % len(COLOURS)]
            for axis in (top, bottom):
                axis.axvline(line.drift_at, color=colour, linestyle="--", linewidth=1.1)
    for axis in (top, bottom):
        axis.axvline(timeline.drift_at, color="red", linestyle=":", linewidth=1.0)
        axis.grid(alpha=0.3)
    top.text(
        timeline.drift_at, 0.97, "midpoint: concept drifts (dashed, per task) ", color="red",
        va="top", ha="right", fontsize=9, transform=top.get_xaxis_transform(),
    )  # fmt: skip
    colour_of = {task: COLOURS[index % len(COLOURS)] for index, task in enumerate(timeline.tasks)}
    alerts = [d for d in deliveries.all() if d.alertname == DRIFT_ALERT and d.status == "firing"]
    for delivery in alerts:
        marker, height = ("v", 0.09) if delivery.sink == "webhook" else ("s", 0.03)
        top.scatter(
            [timeline.since_start(delivery.at)], [height], marker=marker, s=36, zorder=4,
            color=colour_of.get(delivery.task, "red"), edgecolors="red",
        )  # fmt: skip
    if alerts:
        top.scatter([], [], marker="v", color="red", label=f"{DRIFT_ALERT} -> webhook")
        top.scatter([], [], marker="s", color="red", label=f"{DRIFT_ALERT} -> mail")
    top.set_ylim(0, 1.05)
    top.set_ylabel(f"accuracy (rolling {ROLLING_S:.0f}s)")
    top.set_title("Flywheel demo: accuracy per task; dots = a new model version answering")
    top.legend(loc="lower left", fontsize=8)
    bottom.set_ylabel("model version")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xlabel("seconds since the traffic started")
    bottom.set_xlim(0, timeline.duration_s)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
