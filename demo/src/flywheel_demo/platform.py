"""What the platform itself reports, polled once a second during the demo.

* predictor ``GET /v1/tasks/{task}``: the champion version and its live (prequential)
  metrics from the registry, i.e. the trainer's own accuracy on events it had not
  learned yet;
* optimizer ``GET /v1/metrics?window=1m``: the loop seen from outside (latency p99,
  cache hit rate, live accuracy of the served predictions joined with their labels);
* optimizer ``GET /v1/alerts``: the alerts it has firing right now.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from flywheel_demo.simulator import Clock
from flywheel_demo.timeline import Timeline

__all__ = ["PlatformPoller"]

# The optimizer's 1-minute window values the view shows, per task.
OPTIMIZER_METRICS = ("latency_p99_ms", "cache_hit_rate", "live_accuracy", "labeled")


def task_window_values(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task, the task-level values of a ``/v1/metrics`` answer (no per-version rows)."""
    values: dict[str, dict[str, float]] = {}
    for row in rows:
        task, name, value = row.get("task"), row.get("name"), row.get("value")
        if not task or name not in OPTIMIZER_METRICS or value is None:
            continue
        if (row.get("labels") or {}).get("version"):
            continue
        values.setdefault(task, {})[name] = float(value)
    return values


@dataclass
class PlatformPoller:
    predictor_url: str
    optimizer_url: str
    timeline: Timeline
    clock: Clock
    tasks: list[str]
    interval_s: float = 1.0
    firing: list[str] = field(default_factory=list)  # "AlertName task" of firing alerts
    # Every alert the optimizer was seen firing, first sighting (seconds since start).
    seen_firing: dict[str, float] = field(default_factory=dict)
    polls_failed: int = 0

    async def _poll(self, http: httpx.AsyncClient) -> None:
        at = self.clock.now()
        for task in self.tasks:
            answer = await http.get(f"{self.predictor_url}/v1/tasks/{task}")
            if answer.status_code != 200:
                continue  # 404: no champion yet
            detail = answer.json()
            line = self.timeline.task(task)
            line.champion = int(detail["model_version"])
            accuracy = (detail.get("metrics") or {}).get("accuracy")
            if accuracy is not None:
                line.trainer_accuracy.append((at, float(accuracy)))
        metrics = await http.get(f"{self.optimizer_url}/v1/metrics", params={"window": "1m"})
        if metrics.status_code == 200:
            for task, values in task_window_values(metrics.json()["metrics"]).items():
                if task in self.timeline.tasks:
                    self.timeline.tasks[task].optimizer = values
        alerts = await http.get(f"{self.optimizer_url}/v1/alerts")
        if alerts.status_code == 200:
            names = []
            for alert in alerts.json()["alerts"]:
                name = f"{alert['name']} {alert.get('labels', {}).get('task', '')}".strip()
                names.append(name)
                self.seen_firing.setdefault(name, at)
            self.firing = names

    async def run(self) -> None:
        """Poll until cancelled; a failed poll is counted and the next one tried."""
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                try:
                    await self._poll(http)
                except (httpx.HTTPError, ValueError, KeyError):
                    self.polls_failed += 1
                await asyncio.sleep(self.interval_s)

    async def final(self) -> None:
        """One last poll after the traffic stopped, for the summary."""
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            async with httpx.AsyncClient(timeout=2.0) as http:
                await self._poll(http)
