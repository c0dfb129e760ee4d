"""The alerter's core loop: accept alerts durably, run group timers, deliver, settle.

Order of durability (what makes a restart neither lose nor repeat a notification):

1. ``accept``: alerts are written to ``alerts.state`` and the ``alerts`` offsets are
   committed in one Kafka transaction, *then* they enter the in-memory groups.
2. A group flush decides a notification (:class:`~alerter.state.NotificationIntent`,
   its idempotency key derived from durable state only) and stores the intent.
3. The deliverer sends it and settles it in one transaction (final audit record +
   notification-log entry + intent tombstone [+ dead letter]).
4. Resolved alerts no group needs any more are tombstoned.

After a crash, ``restore`` rebuilds groups from stored alerts and resumes every stored
intent with its original key. A crash between 1 and 2 re-derives the same intent; a
crash during 3 resends it (the receiver sees the same idempotency key / dedup_key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import Gauge

from alerter.clock import Clock
from alerter.delivery import Deliverer
from alerter.grouping import Dispatcher, Flush
from alerter.journal import Journal, RestoredState
from alerter.state import Silence
from flywheel.alerting import AttemptOutcome
from flywheel.events import Alert, DeadLetter

__all__ = ["Engine"]

log = logging.getLogger(__name__)

ACTIVE_ALERTS = Gauge("flywheel_alerter_alerts", "Alerts held by the alerter.")
GROUPS = Gauge("flywheel_alerter_groups", "Aggregation groups held by the alerter.")
# Expired silences stay listed this long (for `flywheel alerts silences`), then go.
SILENCE_RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)

IN_FLIGHT = Gauge("flywheel_alerter_notifications_in_flight", "Notifications being delivered.")


class Engine:
    def __init__(
        self,
        dispatcher: Dispatcher,
        deliverer: Deliverer,
        journal: Journal,
        clock: Clock,
    ) -> None:
        self.dispatcher = dispatcher
        self._deliverer = deliverer
        self._journal = journal
        self._clock = clock
        # Serialises "write state, then change memory" so a tombstone can never
        # overtake a newer write of the same alert.
        self._state_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._stopping = False
        self.rejected_total = 0  # unreadable alerts sent to alerts.dlq by this process

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def restore(self, state: RestoredState) -> None:
        """Rebuild from what the last run made durable and resume its pending intents."""
        for silence in state.silences.values():
            self.dispatcher.silences.put(silence)
        self.dispatcher.nflog.update(state.nflog)
        now = self._clock.now()
        for alert in sorted(state.alerts.values(), key=lambda a: (a.starts_at, a.fingerprint)):
            self.dispatcher.insert(alert, now)
        intents = sorted(state.intents.values(), key=lambda i: i.created_at)
        for intent in intents:
            self._spawn(self._complete(self.dispatcher.resume(intent)), intent.idempotency_key)
        log.info(
            "state restored",
            extra={
                "alerts": len(state.alerts),
                "silences": len(state.silences),
                "pending_intents": len(intents),
            },
        )
        self._update_gauges()

    async def accept(
        self,
        alerts: list[Alert],
        rejected: list[DeadLetter],
        offsets: dict[TopicPartition, int],
        group_id: str | None,
    ) -> None:
        async with self._state_lock:
            await self._journal.save_alerts(alerts, rejected, offsets, group_id)
            now = self._clock.now()
            for alert in alerts:
                self.dispatcher.insert(alert, now)
            self.rejected_total += len(rejected)
        self._update_gauges()
        self._wake.set()

    async def put_silence(self, silence: Silence) -> None:
        async with self._state_lock:
            await self._journal.save_silence(silence)
            self.dispatcher.silences.put(silence)
        self._wake.set()

    async def prune_silences(self) -> list[str]:
        """Forget silences that ended more than ``SILENCE_RETENTION`` ago."""
        cutoff = self._clock.now() - SILENCE_RETENTION
        async with self._state_lock:
            expired = [s.id for s in self.dispatcher.silences.all() if s.ends_at < cutoff]
            if expired:
                await self._journal.delete_silences(expired)
                for silence_id in expired:
                    self.dispatcher.silences.remove(silence_id)
        return expired

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=f"notify:{name}")
        self._tasks.add(task)
        IN_FLIGHT.set(len(self._tasks))

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            IN_FLIGHT.set(len(self._tasks))
            if not t.cancelled() and t.exception() is not None and self._failure is None:
                # A journal write failed: stop, so the restart recovers from Kafka.
                self._failure = t.exception()
                self._wake.set()

        task.add_done_callback(done)

    async def _complete(self, flush: Flush) -> None:
        if flush.intent is not None:
            await self._journal.save_intent(flush.intent)
            await self._deliverer.deliver(flush.intent)
        async with self._state_lock:
            alerts, log_entries = self.dispatcher.settle(flush, self._clock.now())
            await self._journal.forget(alerts, log_entries)
        self._update_gauges()
        self._wake.set()

    def flush_due(self) -> int:
        """Start a flush for every group whose timer has expired; return how many."""
        now = self._clock.now()
        due = self.dispatcher.due(now)
        for group in due:
            flush = self.dispatcher.plan(group, now)
            self._spawn(self._complete(flush), group.group_key)
        return len(due)

    async def run(self) -> None:
        next_prune = self._clock.now()
        while not self._stopping:
            if self._failure is not None:
                raise RuntimeError("a notification task failed") from self._failure
            self._wake.clear()
            if self._clock.now() >= next_prune:
                await self.prune_silences()
                next_prune = self._clock.now() + PRUNE_EVERY
            self.flush_due()
            deadline = self.dispatcher.next_deadline()
            if deadline is None or deadline > next_prune:
                deadline = next_prune
            timeout = max(0.0, (deadline - self._clock.now()).total_seconds())
            await self._wait(sleep_s=timeout)

    async def _wait(self, *, sleep_s: float | None) -> None:
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        if sleep_s is not None:
            waiters.add(asyncio.ensure_future(self._clock.sleep(sleep_s)))
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await future

    async def stop(self, grace_s: float) -> None:
        """Stop timers; give in-flight deliveries ``grace_s`` to settle, then cancel
        them (their intents are durable and resume on the next start)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def heartbeat_gauges(self) -> dict[str, float]:
        """The alerter's heartbeat gauges (``flywheel.heartbeat``), from its own state.

        A notification is the alerter's unit of work: ``requests_total`` counts those
        settled, ``request_errors_total`` those that failed (parked in ``alerts.dlq``).
        """
        settled = self._deliverer.settled
        failed = settled.get(AttemptOutcome.FAILED, 0)
        return {
            "alerts": float(len(self.dispatcher.alerts)),
            "groups": float(len(self.dispatcher.groups)),
            "pending_intents": float(len(self._deliverer.pending)),
            "notifications_sent_total": float(settled.get(AttemptOutcome.DELIVERED, 0)),
            "notifications_suppressed_total": float(settled.get(AttemptOutcome.SUPPRESSED, 0)),
            "dlq_total": float(failed + self.rejected_total),
            "requests_total": float(sum(settled.values())),
            "request_errors_total": float(failed),
        }

    def _update_gauges(self) -> None:
        ACTIVE_ALERTS.set(len(self.dispatcher.alerts))
        GROUPS.set(len(self.dispatcher.groups))
