"""Alerter unit fixtures: an engine on a virtual clock, an in-memory journal and
scriptable receivers (same interfaces as the real ones; no network)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from alerter.clock import VirtualClock
from alerter.delivery import Deliverer
from alerter.engine import Engine
from alerter.grouping import Dispatcher
from alerter.journal import MemoryJournal
from alerter.muting import Inhibitor, SilenceStore
from alerter.receivers.base import Receiver
from alerter.routing import AlerterConfig, parse_config
from alerter.state import NotificationIntent
from flywheel.events import Alert, AlertSeverity, AlertState


def make_alert(
    name: str = "TaskAccuracyLow",
    *,
    state: AlertState = AlertState.FIRING,
    severity: AlertSeverity = AlertSeverity.WARNING,
    clock: VirtualClock | None = None,
    age_s: float = 0.0,
    **labels: str,
) -> Alert:
    now = (clock or VirtualClock()).now()
    return Alert.build(
        name,
        state=state,
        severity=severity,
        labels={"task": "daisy", **labels},
        annotations={"summary": f"{name} for {labels}"},
        starts_at=now - timedelta(seconds=age_s),
    )


@dataclass
class ScriptedReceiver:
    """A receiver whose answers are scripted: each ``send`` pops the next one (an
    exception to raise, or a status code); the last answer repeats."""

    name: str
    kind: str = "fake"
    rate_per_s: float = 1000.0
    max_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    answers: list[Any] = field(default_factory=lambda: [200])
    sent: list[NotificationIntent] = field(default_factory=list)
    sent_at: list[Any] = field(default_factory=list)
    clock: VirtualClock | None = None

    rate_key: str = ""

    def __post_init__(self) -> None:
        self.rate_key = f"fake:{self.name}"

    async def send(self, intent: NotificationIntent) -> int:
        self.sent.append(intent)
        if self.clock is not None:
            self.sent_at.append(self.clock.now())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return int(answer)


@dataclass
class Harness:
    clock: VirtualClock
    journal: MemoryJournal
    engine: Engine
    receivers: dict[str, ScriptedReceiver]

    async def accept(self, *alerts: Alert) -> None:
        await self.engine.accept(list(alerts), [], {}, None)

    async def tick(self, seconds: float = 0.0) -> None:
        """Advance virtual time, fire due group timers, let deliveries run."""
        await self.clock.advance(seconds)
        self.engine.flush_due()
        await self.clock.advance(0)

    def delivered(self, receiver: str) -> list[NotificationIntent]:
        return self.receivers[receiver].sent


def build_harness(
    config: AlerterConfig,
    receivers: dict[str, ScriptedReceiver] | None = None,
    journal: MemoryJournal | None = None,
    clock: VirtualClock | None = None,
) -> Harness:
    clock = clock or VirtualClock()
    receivers = receivers or {r.name: ScriptedReceiver(r.name) for r in config.receivers}
    for receiver in receivers.values():
        receiver.clock = clock
    journal = journal or MemoryJournal()
    dispatcher = Dispatcher(config.routing_tree(), SilenceStore(), Inhibitor(config.inhibit_rules))
    typed: dict[str, Receiver] = {name: r for name, r in receivers.items()}
    deliverer = Deliverer(typed, journal, clock, rng=random.Random(7))
    return Harness(clock, journal, Engine(dispatcher, deliverer, journal, clock), receivers)


def simple_config(**route: Any) -> AlerterConfig:
    return parse_config(
        {
            "route": {
                "receiver": "team",
                "group_by": ["task"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
                **route,
            },
            "receivers": [
                {"name": "team", "type": "log"},
                {"name": "oncall", "type": "log"},
            ],
        }
    )


@pytest.fixture
def harness_factory() -> Callable[..., Harness]:
    return build_harness
