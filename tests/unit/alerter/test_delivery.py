"""Retries, back-off honouring Retry-After, dead letters and rate limits (virtual time)."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import timedelta

from alerter.clock import VirtualClock
from alerter.delivery import RateLimiter, backoff_delay
from alerter.receivers.base import PermanentDeliveryError, RetryableDeliveryError
from flywheel.alerting import AttemptOutcome
from flywheel.events import AlertSeverity
from tests.unit.alerter.conftest import (
    Harness,
    ScriptedReceiver,
    build_harness,
    make_alert,
    simple_config,
)


def _harness(*answers: object, max_attempts: int = 5) -> tuple[Harness, ScriptedReceiver]:
    receiver = ScriptedReceiver("team", answers=list(answers), max_attempts=max_attempts)
    h = build_harness(simple_config(), {"team": receiver, "oncall": ScriptedReceiver("oncall")})
    return h, receiver


async def test_retry_after_is_honoured_then_delivered() -> None:
    h, receiver = _harness(
        RetryableDeliveryError("429", status_code=429, retry_after=45.0, reason="rate_limited"),
        202,
    )
    await h.accept(make_alert(clock=h.clock, age_s=60))
    await h.tick(0)
    assert len(receiver.sent) == 1
    await h.tick(44)
    assert len(receiver.sent) == 1  # Retry-After: 45 beats the ~1s back-off
    await h.tick(1)
    assert len(receiver.sent) == 2
    assert receiver.sent_at[1] - receiver.sent_at[0] >= timedelta(seconds=45)
    outcomes = [(a.attempt, a.outcome, a.final) for a in h.journal.attempts]
    assert outcomes == [
        (1, AttemptOutcome.RETRYING, False),
        (2, AttemptOutcome.DELIVERED, True),
    ]
    assert h.journal.attempts[0].retry_after_s == 45.0
    assert h.journal.dead_letters == []
    assert h.journal.state.intents == {}


async def test_a_4xx_is_not_retried_and_goes_to_the_dead_letter_queue() -> None:
    h, receiver = _harness(
        PermanentDeliveryError("HTTP 400 bad", reason="rejected", status_code=400)
    )
    alert = make_alert(clock=h.clock, age_s=60)
    await h.accept(alert)
    await h.tick(0)
    await h.tick(600)
    assert len(receiver.sent) == 1
    [dead] = h.journal.dead_letters
    assert dead.reason == "rejected"
    assert dead.notification["alerts"][0]["fingerprint"] == alert.fingerprint
    assert [a.outcome for a in h.journal.attempts] == [AttemptOutcome.FAILED]
    # Settled: the notification log moved on, so it is not re-attempted every interval.
    await h.tick(300)
    assert len(receiver.sent) == 1


async def test_retries_exhausted_go_to_the_dead_letter_queue() -> None:
    h, receiver = _harness(RetryableDeliveryError("HTTP 500", status_code=500), max_attempts=4)
    await h.accept(make_alert(clock=h.clock, age_s=60))
    for _ in range(40):
        await h.tick(5)
    assert len(receiver.sent) == 4
    [dead] = h.journal.dead_letters
    assert dead.reason == "retries_exhausted"
    assert dead.attempts == 4
    assert [a.outcome for a in h.journal.attempts].count(AttemptOutcome.RETRYING) == 3


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [
        backoff_delay(n, initial_s=1.0, max_s=60.0, retry_after=None, rng=rng) for n in range(1, 10)
    ]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(1, initial_s=1, max_s=60, retry_after=120.0, rng=rng) == 120.0


async def test_rate_limiter_spaces_sends_one_per_second() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(1.0, clock)
    times = []

    async def send() -> None:
        await limiter.acquire()
        times.append(clock.now())

    tasks = [asyncio.create_task(send()) for _ in range(4)]
    await clock.advance(0)
    await clock.advance(5)
    await asyncio.gather(*tasks)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 1.0, 1.0]


async def test_unknown_receiver_is_dead_lettered_not_dropped() -> None:
    h, _ = _harness(200)
    await h.accept(make_alert(clock=h.clock, age_s=60))
    await h.tick(0)
    [intent_sent] = h.receivers["team"].sent
    orphan = intent_sent.model_copy(
        update={"receiver": "gone", "idempotency_key": "f" * 32, "sequence": 9}
    )
    await h.engine._deliverer.deliver(orphan)
    assert [d.reason for d in h.journal.dead_letters] == ["unknown_receiver"]


async def test_a_receiver_bug_is_dead_lettered_not_a_crash_loop() -> None:
    h, _ = _harness(KeyError("summary"))
    await h.accept(make_alert(clock=h.clock, age_s=60))
    await h.tick(0)
    [dead] = h.journal.dead_letters
    assert dead.reason == "internal_error"
    assert "KeyError" in dead.error


async def test_heartbeat_gauges_count_pending_intents_sends_and_dead_letters() -> None:
    from aiokafka import TopicPartition

    from alerter.config import Settings
    from alerter.service import AlerterService
    from flywheel.events import DeadLetter

    team = ScriptedReceiver(
        "team",
        answers=[RetryableDeliveryError("HTTP 503", status_code=503), 200],
        max_attempts=3,
    )
    oncall = ScriptedReceiver("oncall", answers=[PermanentDeliveryError("400", reason="rejected")])
    h = build_harness(
        simple_config(routes=[{"receiver": "oncall", "matchers": ['severity="critical"']}]),
        {"team": team, "oncall": oncall},
    )
    engine = h.engine
    assert engine.heartbeat_gauges()["requests_total"] == 0
    broken = DeadLetter(
        reason="broken_json",
        error="not JSON",
        original_b64="e30=",
        source_topic="alerts",
        source_partition=0,
        source_offset=3,
    )
    await engine.accept(
        [
            make_alert(clock=h.clock, age_s=60),
            make_alert("Down", severity=AlertSeverity.CRITICAL, clock=h.clock, age_s=60),
        ],
        [broken],
        {TopicPartition("alerts", 0): 3},
        None,
    )
    await h.tick(0)
    # team got a 503 and is backing off: its intent is pending; oncall's went to the DLQ.
    gauges = engine.heartbeat_gauges()
    assert gauges == {
        "alerts": 2.0,
        "groups": 2.0,
        "pending_intents": 1.0,
        "notifications_sent_total": 0.0,
        "notifications_suppressed_total": 0.0,
        "dlq_total": 2.0,
        "requests_total": 1.0,
        "request_errors_total": 1.0,
    }
    for _ in range(10):
        await h.tick(5)
    gauges = engine.heartbeat_gauges()
    assert gauges["pending_intents"] == 0
    assert gauges["notifications_sent_total"] == 1
    assert (gauges["requests_total"], gauges["request_errors_total"]) == (2, 1)
    # The service hands its publisher the engine's gauges (none before start-up).
    service = AlerterService(Settings(heartbeat_interval_s=2.0), simple_config(), h.clock)
    assert service._gauges() == {}
    service._engine = engine
    beat = service.heartbeat.build()
    assert beat.service == "alerter" and beat.gauges == gauges
