"""Grouping timers, dedup, resolve and repeat behaviour, in virtual time (no sleeps)."""

from __future__ import annotations

import asyncio

from alerter.journal import MemoryJournal
from alerter.routing import parse_config
from alerter.state import Silence
from flywheel.alerting import AttemptOutcome
from flywheel.events import AlertSeverity, AlertState
from tests.unit.alerter.conftest import Harness, build_harness, make_alert, simple_config


async def run_for(h: Harness, seconds: int, step: int = 1) -> None:
    for _ in range(seconds // step):
        await h.tick(step)


async def test_group_wait_batches_alerts_into_one_notification() -> None:
    h = build_harness(simple_config())
    await h.accept(make_alert(clock=h.clock, instance="a"))
    await run_for(h, 10)
    await h.accept(make_alert("LatencyHigh", clock=h.clock, instance="b"))
    await run_for(h, 19)
    assert h.delivered("team") == []  # 29s: still inside group_wait
    await run_for(h, 1)
    [sent] = h.delivered("team")
    assert sorted(a.name for a in sent.alerts) == ["LatencyHigh", "TaskAccuracyLow"]
    assert sent.group_labels == {"task": "daisy"}
    assert sent.sequence == 1


async def test_alert_older_than_group_wait_flushes_at_once() -> None:
    h = build_harness(simple_config())
    await h.accept(make_alert(clock=h.clock, age_s=120))
    await h.tick(0)
    assert len(h.delivered("team")) == 1


async def test_new_alert_after_first_flush_waits_for_group_interval() -> None:
    h = build_harness(simple_config())
    await h.accept(make_alert(clock=h.clock, instance="a"))
    await run_for(h, 30)
    assert len(h.delivered("team")) == 1
    await run_for(h, 10)
    await h.accept(make_alert("LatencyHigh", clock=h.clock))
    await run_for(h, 280, step=10)  # t=320 < 30+300
    assert len(h.delivered("team")) == 1
    await run_for(h, 10, step=10)  # t=330
    assert len(h.delivered("team")) == 2
    assert h.delivered("team")[1].sequence == 2


async def test_duplicates_do_not_renotify_until_repeat_interval() -> None:
    h = build_harness(simple_config())
    alert = make_alert(clock=h.clock)
    await h.accept(alert)
    await run_for(h, 30)
    for _ in range(5):
        await h.accept(alert)  # the same alert again and again: deduplicated
    await run_for(h, 4 * 3600 - 300, step=300)
    assert len(h.delivered("team")) == 1
    await run_for(h, 600, step=300)
    assert len(h.delivered("team")) == 2  # repeat_interval (4h) passed
    first, second = h.delivered("team")
    assert first.idempotency_key != second.idempotency_key


async def test_resolve_is_sent_and_the_group_is_cleared() -> None:
    h = build_harness(simple_config())
    firing = make_alert(clock=h.clock)
    await h.accept(firing)
    await run_for(h, 30)
    resolved = firing.model_copy(update={"state": AlertState.RESOLVED})
    await h.accept(resolved)
    await run_for(h, 300, step=10)
    sent = h.delivered("team")
    assert [s.status for s in sent] == [AlertState.FIRING, AlertState.RESOLVED]
    assert sent[1].resolved == frozenset({firing.fingerprint})
    assert h.engine.dispatcher.groups == {}
    assert h.journal.state.alerts == {}  # resolved and notified: forgotten (tombstoned)


async def test_send_resolved_off_suppresses_the_resolve_but_clears_the_log() -> None:
    h = build_harness(simple_config(send_resolved=False))
    firing = make_alert(clock=h.clock)
    await h.accept(firing)
    await run_for(h, 30)
    await h.accept(firing.model_copy(update={"state": AlertState.RESOLVED}))
    await run_for(h, 300, step=10)
    assert len(h.delivered("team")) == 1
    final = [a for a in h.journal.attempts if a.final]
    assert [a.outcome for a in final] == [AttemptOutcome.DELIVERED, AttemptOutcome.SUPPRESSED]
    # The group is gone and its receiver knows of nothing firing: the log is cleared.
    assert h.journal.state.nflog == {}


async def test_a_new_firing_episode_after_the_log_was_cleared_gets_a_new_key() -> None:
    h = build_harness(simple_config())
    first = make_alert(clock=h.clock)
    await h.accept(first)
    await run_for(h, 30)
    await h.accept(first.model_copy(update={"state": AlertState.RESOLVED}))
    await run_for(h, 300, step=10)
    assert h.journal.state.nflog == {}  # group gone, nothing firing: entry tombstoned
    again = first.model_copy(update={"starts_at": h.clock.now()})
    await h.accept(again)
    await run_for(h, 30)
    keys = [s.idempotency_key for s in h.delivered("team")]
    assert len(keys) == 3
    assert len(set(keys)) == 3


async def test_alert_resolved_within_group_wait_is_never_sent() -> None:
    h = build_harness(simple_config())
    firing = make_alert(clock=h.clock)
    await h.accept(firing)
    await run_for(h, 10)
    await h.accept(firing.model_copy(update={"state": AlertState.RESOLVED}))
    await run_for(h, 30)
    assert h.delivered("team") == []
    assert h.engine.dispatcher.alerts == {}


async def test_group_by_splits_notifications_and_continue_fans_out() -> None:
    config = simple_config(
        routes=[{"matchers": ['severity="critical"'], "receiver": "oncall", "continue": True}]
    )
    h = build_harness(config)
    await h.accept(make_alert(clock=h.clock, severity=AlertSeverity.CRITICAL, task="a"))
    await h.accept(make_alert(clock=h.clock, severity=AlertSeverity.WARNING, task="b"))
    await run_for(h, 30)
    assert [s.group_labels for s in h.delivered("oncall")] == [{"task": "a"}]
    assert sorted(s.group_labels["task"] for s in h.delivered("team")) == ["b"]


async def test_without_continue_the_first_matching_route_wins() -> None:
    config = simple_config(
        routes=[
            {"matchers": ['task=~"a|b"'], "receiver": "oncall"},
            {"matchers": ['task="a"'], "receiver": "team"},
        ]
    )
    h = build_harness(config)
    await h.accept(make_alert(clock=h.clock, task="a"))
    await run_for(h, 30)
    assert len(h.delivered("oncall")) == 1
    assert h.delivered("team") == []


async def test_silenced_alert_is_held_back_until_the_silence_ends() -> None:
    h = build_harness(simple_config())
    await h.engine.put_silence(
        Silence(
            id="0" * 32,
            matchers=['task="daisy"'],
            starts_at=h.clock.now(),
            ends_at=h.clock.now().replace(hour=1),
            created_by="test",
        )
    )
    await h.accept(make_alert(clock=h.clock))
    await run_for(h, 3000, step=30)
    assert h.delivered("team") == []
    await run_for(h, 900, step=30)  # the silence ended at 01:00
    assert len(h.delivered("team")) == 1


async def test_critical_inhibits_warning_with_equal_labels() -> None:
    config = parse_config(
        {
            "route": {"receiver": "team", "group_by": ["..."], "group_wait": "30s"},
            "receivers": [{"name": "team", "type": "log"}],
            "inhibit_rules": [
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="warning"'],
                    "equal": ["task"],
                }
            ],
        }
    )
    h = build_harness(config)
    await h.accept(make_alert("Down", clock=h.clock, severity=AlertSeverity.CRITICAL, task="a"))
    await h.accept(make_alert("Slow", clock=h.clock, task="a"))
    await h.accept(make_alert("Slow", clock=h.clock, task="b"))
    await run_for(h, 31)  # one more second: the receiver's rate limit spaces the two sends
    names = sorted((s.alerts[0].name, s.alerts[0].labels["task"]) for s in h.delivered("team"))
    assert names == [("Down", "a"), ("Slow", "b")]


async def test_restart_restores_state_without_repeating_or_losing() -> None:
    journal = MemoryJournal()
    first = build_harness(simple_config(), journal=journal)
    firing = make_alert(clock=first.clock)
    await first.accept(firing)
    await run_for(first, 30)
    await first.accept(firing.model_copy(update={"state": AlertState.RESOLVED}))
    # "Crash" here: the resolve is accepted (durable) but its group has not flushed.
    second = build_harness(simple_config(), journal=journal, clock=first.clock)
    second.engine.restore(journal.state)
    await run_for(second, 300, step=10)
    assert second.delivered("team")[0].status is AlertState.RESOLVED
    assert len(second.delivered("team")) == 1  # the firing one is not repeated


async def test_pending_intent_resumes_with_the_same_idempotency_key() -> None:
    journal = MemoryJournal()
    first = build_harness(simple_config(), journal=journal)
    # Cancellation mid-send is what the process dying looks like from inside.
    first.receivers["team"].answers = [asyncio.CancelledError()]
    await first.accept(make_alert(clock=first.clock))
    await run_for(first, 30)
    [pending] = journal.state.intents.values()
    second = build_harness(simple_config(), journal=journal, clock=first.clock)
    second.engine.restore(journal.state)
    await second.tick(0)
    [resent] = second.delivered("team")
    assert resent.idempotency_key == pending.idempotency_key
    assert journal.state.intents == {}
    await run_for(second, 600, step=30)
    assert len(second.delivered("team")) == 1


async def test_silences_are_forgotten_a_week_after_they_end() -> None:
    h = build_harness(simple_config())
    await h.engine.put_silence(
        Silence(
            id="1" * 32,
            matchers=['task="daisy"'],
            starts_at=h.clock.now(),
            ends_at=h.clock.now().replace(hour=1),
            created_by="test",
        )
    )
    await h.clock.advance(6 * 86400)
    assert await h.engine.prune_silences() == []
    await h.clock.advance(86400 + 7200)
    assert await h.engine.prune_silences() == ["1" * 32]
    assert h.journal.state.silences == {}
    assert h.engine.dispatcher.silences.all() == []
