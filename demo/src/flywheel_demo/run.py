"""The demo from start to end: sinks, stack, traffic with a drift, chart, summary.

The stack and the sinks are stopped whatever happens (Ctrl-C included), and only what
the demo started is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live

from flywheel_client import AsyncFlywheelClient, RetryPolicy
from flywheel_demo.alerting import DRIFT_ALERT, HOOK_SECRET_ENV, write_alerter_config
from flywheel_demo.chart import write_chart
from flywheel_demo.platform import PlatformPoller
from flywheel_demo.scenarios import SCENARIOS, task_name
from flywheel_demo.simulator import Clock, ServiceSimulator
from flywheel_demo.sinks import DeliveryLog, SmtpSink, WebhookSink
from flywheel_demo.stack import DemoStack, free_port
from flywheel_demo.summary import DemoSummary, summarise
from flywheel_demo.timeline import Timeline
from flywheel_demo.view import DemoView, plain_lines

__all__ = ["DRIFT_STAGGER_S", "DemoOptions", "DemoResult", "run_demo"]

KEEP_RUNS = 3
PLAIN_EVERY_S = 10.0
SETTLE_STEP_S = 0.5
# Service i drifts i x this after the midpoint: apart in the chart, and, with a new
# champion every 8 s, early, midway and late in a champion's life (the last one can
# land just before a swap: the optimizer's drift detection must hold across it).
DRIFT_STAGGER_S = 3.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration_s: float = 100.0
    drift_at: float = 0.5  # share of the duration
    rate: float = 60.0  # predictions (and feedback events) per second, per service
    output_dir: Path = Path(".flywheel/demo")
    live: bool | None = None  # None: rich's Live view when stdout is a terminal
    seed: int = 7
    # After the traffic, how long to wait for a drift alert still on its way.
    settle_s: float = 5.0


@dataclass
class DemoResult:
    summary: DemoSummary
    timeline: Timeline
    deliveries: DeliveryLog
    chart: Path
    run_dir: Path
    topic_prefix: str  # the demo's namespace (its topics are deleted at the end)
    ports: dict[str, int] = field(default_factory=dict)  # the demo's services
    timings: dict[str, float] = field(default_factory=dict)


def _prune_runs(runs_dir: Path) -> None:
    """Keep the newest few run folders (config and logs of the demo's services)."""
    runs = sorted((p for p in runs_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


def run_demo(
    options: DemoOptions,
    console: Console | None = None,
    env: Mapping[str, str] | None = None,
) -> DemoResult:
    """Run the whole demo and return what happened.

    ``env`` (default ``os.environ``) says where Kafka and Redis are, as for
    ``flywheel stack``; the demo's services inherit it.
    """
    console = console or Console()
    live = console.is_terminal if options.live is None else options.live
    run_id = time.strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    run_dir = (options.output_dir / "runs" / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    _prune_runs(run_dir.parent)

    def echo(line: str) -> None:
        console.print(f"[dim][{time.monotonic() - started:5.1f}s][/] {line}", highlight=False)

    deliveries = DeliveryLog()
    hook_secret = secrets.token_urlsafe(24)
    webhook = WebhookSink(deliveries, hook_secret)
    smtp = SmtpSink(deliveries, port=free_port())
    stack = DemoStack(
        run_id=run_id.replace("-", ""),
        state_dir=run_dir / "stack",
        alerter_config=write_alerter_config(run_dir / "alerter.yaml", webhook.url, smtp.port),
        env={**(os.environ if env is None else env), HOOK_SECRET_ENV: hook_secret},
        echo=echo,
    )
    timings: dict[str, float] = {}
    webhook.start()
    smtp.start()
    try:
        echo(f"webhook receiver on {webhook.url}, SMTP sink on 127.0.0.1:{smtp.port}")
        stack.up([scenario.definition(task_name(scenario)) for scenario in SCENARIOS])
        timings["stack_up_s"] = time.monotonic() - started
        echo(f"the demo's services are healthy (logs in {run_dir / 'stack' / 'logs'})")
        traffic = Traffic(options, stack, deliveries, console)
        timeline = asyncio.run(traffic.run(live=live))
        timings["traffic_done_s"] = time.monotonic() - started
        chart = write_chart(timeline, deliveries, options.output_dir.resolve() / f"{run_id}.png")
        timings["chart_done_s"] = time.monotonic() - started
    finally:
        stopping = time.monotonic()
        echo("stopping the demo's services")
        stack.down()
        webhook.stop()
        smtp.stop()
        timings["teardown_s"] = time.monotonic() - stopping
    timings["total_s"] = time.monotonic() - started
    return DemoResult(
        summary=summarise(timeline, deliveries),
        timeline=timeline,
        deliveries=deliveries,
        chart=chart,
        run_dir=run_dir,
        topic_prefix=stack.topic_prefix,
        ports=dict(stack.ports),
        timings=timings,
    )


class Traffic:
    """The three simulated services against the demo's stack, watched live."""

    def __init__(
        self, options: DemoOptions, stack: DemoStack, deliveries: DeliveryLog, console: Console
    ) -> None:
        self.options = options
        self.stack = stack
        self.deliveries = deliveries
        self.console = console

    async def run(self, *, live: bool) -> Timeline:
        options, stack = self.options, self.stack
        clock = Clock.starting_now(
            drift_at_s=options.duration_s * options.drift_at, duration_s=options.duration_s
        )
        timeline = Timeline(
            drift_at=clock.drift_at_s, duration_s=clock.duration_s, wall_start=clock.wall_start
        )
        tasks = [task_name(scenario) for scenario in SCENARIOS]
        clients = [
            AsyncFlywheelClient(
                stack.url("predictor"),
                kafka=stack.kafka,
                timeout_s=1.0,
                retry=RetryPolicy(max_retries=1),
                source=f"demo-{scenario.service}",
            )
            for scenario in SCENARIOS
        ]
        simulators = [
            ServiceSimulator(
                scenario,
                client,
                timeline.task(task_name(scenario)),
                clock,
                rate=options.rate,
                seed=options.seed + index,
                drift_offset_s=index * DRIFT_STAGGER_S,
            )
            for index, (scenario, client) in enumerate(zip(SCENARIOS, clients, strict=True))
        ]
        poller = PlatformPoller(
            stack.url("predictor"), stack.url("optimizer"), timeline, clock, tasks
        )
        view = DemoView(timeline, clock, poller, self.deliveries)
        polling = asyncio.create_task(poller.run())
        try:
            for client in clients:
                await client.start()
            traffic = asyncio.gather(*(simulator.run() for simulator in simulators))
            if live:
                with Live(view.render(), console=self.console, refresh_per_second=2) as screen:
                    await self._watch(traffic, lambda: screen.update(view.render()), 0.5)
            else:

                def report() -> None:
                    for line in plain_lines(timeline, clock, self.deliveries):
                        self.console.print(line, highlight=False, soft_wrap=True)

                await self._watch(traffic, report, PLAIN_EVERY_S)
            await poller.final()
        finally:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
            for client in clients:
                await client.close()
        timeline.seen_firing = dict(poller.seen_firing)
        return timeline

    async def _watch(
        self, traffic: asyncio.Future[list[None]], refresh: Callable[[], None], every_s: float
    ) -> None:
        """Refresh the view until the traffic ends, then until the drift alert landed."""
        refresh()
        while not traffic.done():
            await asyncio.wait([traffic], timeout=every_s)
            refresh()
        await traffic  # raise what a simulator raised
        for _ in range(round(self.options.settle_s / SETTLE_STEP_S)):
            if self.deliveries.count("webhook", DRIFT_ALERT) and self.deliveries.count(
                "smtp", DRIFT_ALERT
            ):
                break
            await asyncio.sleep(SETTLE_STEP_S)
        refresh()
