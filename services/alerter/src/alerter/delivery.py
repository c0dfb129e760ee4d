"""Delivering one notification intent to its receiver until it is settled.

Each attempt waits for the receiver's rate-limit slot, then sends. Retryable failures
(429, 5xx, network) back off exponentially with jitter, never sooner than the
receiver's ``Retry-After``; each is recorded on ``alerts.notifications``. The
intent settles exactly once: delivered, suppressed (nothing to send) or failed - a
4xx other than 429, a refused target or exhausted retries - in which case the whole
notification goes to ``alerts.dlq``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from prometheus_client import Counter

from alerter.clock import Clock
from alerter.journal import Journal
from alerter.receivers.base import (
    DeliveryError,
    PermanentDeliveryError,
    Receiver,
    RetryableDeliveryError,
)
from alerter.state import NotificationIntent
from flywheel.alerting import AttemptOutcome, NotificationAttempt, NotificationDeadLetter
from flywheel.logs import redact

__all__ = ["Deliverer", "RateLimiter", "backoff_delay"]

log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "flywheel_alerter_notification_attempts_total",
    "Notification attempts by receiver and outcome.",
    ["receiver", "outcome"],
)
DEAD_LETTERS = Counter(
    "flywheel_alerter_dead_letters_total",
    "Notifications parked in alerts.dlq, by receiver and reason.",
    ["receiver", "reason"],
)

MAX_RETRY_AFTER_S = 3600.0


class RateLimiter:
    """Spaces sends to one target at least ``1 / rate_per_s`` apart (Slack: 1/s per
    webhook; PagerDuty: 120/min per routing key)."""

    def __init__(self, rate_per_s: float, clock: Clock) -> None:
        self._interval = timedelta(seconds=1.0 / rate_per_s)
        self._clock = clock
        self._next_free: datetime | None = None

    async def acquire(self) -> None:
        now = self._clock.now()
        slot = max(now, self._next_free) if self._next_free else now
        self._next_free = slot + self._interval
        wait = (slot - now).total_seconds()
        if wait > 0:
            await self._clock.sleep(wait)


def backoff_delay(
    attempt: int,
    *,
    initial_s: float,
    max_s: float,
    retry_after: float | None,
    rng: random.Random,
) -> float:
    """Exponential back-off with "equal jitter", never below ``Retry-After``."""
    ceiling = min(max_s, initial_s * 2 ** (attempt - 1))
    delay = rng.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


class Deliverer:
    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        journal: Journal,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._receivers = receivers
        self._journal = journal
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._limiters: dict[str, RateLimiter] = {}
        # For the heartbeat: intents being delivered now, and how each one settled.
        self.pending: set[str] = set()
        self.settled: dict[AttemptOutcome, int] = dict.fromkeys(
            (AttemptOutcome.DELIVERED, AttemptOutcome.SUPPRESSED, AttemptOutcome.FAILED), 0
        )

    def _limiter(self, receiver: Receiver) -> RateLimiter:
        limiter = self._limiters.get(receiver.rate_key)
        if limiter is None:
            limiter = RateLimiter(receiver.rate_per_s, self._clock)
            self._limiters[receiver.rate_key] = limiter
        return limiter

    def _attempt(
        self,
        intent: NotificationIntent,
        kind: str,
        attempt: int,
        outcome: AttemptOutcome,
        *,
        final: bool,
        error: DeliveryError | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> NotificationAttempt:
        ATTEMPTS.labels(intent.receiver, outcome.value).inc()
        return NotificationAttempt(
            idempotency_key=intent.idempotency_key,
            receiver=intent.receiver,
            receiver_type=kind,
            group_key=intent.group_key[:2_048],
            sequence=intent.sequence,
            attempt=attempt,
            outcome=outcome,
            final=final,
            status=intent.status,
            fingerprints=[a.fingerprint for a in intent.alerts],
            status_code=error.status_code if error else status_code,
            error=redact(str(error))[:2_000] if error else None,
            retry_after_s=retry_after,
            at=self._clock.now(),
        )

    async def _settle(
        self,
        intent: NotificationIntent,
        final: NotificationAttempt,
        reason: str | None = None,
    ) -> AttemptOutcome:
        dead_letter = None
        if final.outcome is AttemptOutcome.FAILED:
            reason = reason or "failed"
            DEAD_LETTERS.labels(intent.receiver, reason).inc()
            dead_letter = NotificationDeadLetter(
                reason=reason,
                error=final.error or reason,
                idempotency_key=intent.idempotency_key,
                receiver=intent.receiver,
                receiver_type=final.receiver_type,
                attempts=final.attempt,
                notification=intent.model_dump(mode="json"),
                at=self._clock.now(),
            )
            log.warning(
                "notification dead-lettered",
                extra={"receiver": intent.receiver, "reason": reason, "error": final.error},
            )
        await self._journal.settle(intent, final, intent.log_entry(final.at), dead_letter)
        self.settled[final.outcome] = self.settled.get(final.outcome, 0) + 1
        return final.outcome

    async def deliver(self, intent: NotificationIntent) -> AttemptOutcome:
        """Send ``intent`` until it is settled; return how it settled."""
        self.pending.add(intent.idempotency_key)
        try:
            return await self._deliver(intent)
        finally:
            self.pending.discard(intent.idempotency_key)

    async def _deliver(self, intent: NotificationIntent) -> AttemptOutcome:
        receiver = self._receivers.get(intent.receiver)
        if receiver is None:
            error = PermanentDeliveryError(
                f"receiver {intent.receiver!r} is no longer configured", reason="unknown_receiver"
            )
            final = self._attempt(
                intent, "unknown", 0, AttemptOutcome.FAILED, final=True, error=error
            )
            return await self._settle(intent, final, error.reason)
        if not intent.send:
            final = self._attempt(intent, receiver.kind, 0, AttemptOutcome.SUPPRESSED, final=True)
            return await self._settle(intent, final)
        limiter = self._limiter(receiver)
        attempt = 0
        while True:
            attempt += 1
            await limiter.acquire()
            try:
                status = await receiver.send(intent)
            except RetryableDeliveryError as exc:
                if attempt >= receiver.max_attempts:
                    final = self._attempt(
                        intent, receiver.kind, attempt, AttemptOutcome.FAILED, final=True, error=exc
                    )
                    return await self._settle(intent, final, "retries_exhausted")
                delay = backoff_delay(
                    attempt,
                    initial_s=receiver.backoff_initial_s,
                    max_s=receiver.backoff_max_s,
                    retry_after=exc.retry_after,
                    rng=self._rng,
                )
                await self._journal.record_attempt(
                    self._attempt(
                        intent,
                        receiver.kind,
                        attempt,
                        AttemptOutcome.RETRYING,
                        final=False,
                        error=exc,
                        retry_after=exc.retry_after,
                    )
                )
                await self._clock.sleep(delay)
            except PermanentDeliveryError as exc:
                final = self._attempt(
                    intent, receiver.kind, attempt, AttemptOutcome.FAILED, final=True, error=exc
                )
                return await self._settle(intent, final, exc.reason)
            except Exception as exc:
                # A bug in a receiver must not crash-loop the alerter and hold back every
                # other page: park this notification (with the error) and carry on.
                log.exception("receiver failed unexpectedly", extra={"receiver": receiver.name})
                error = PermanentDeliveryError(
                    f"{receiver.kind} receiver {receiver.name}: internal error "
                    f"{type(exc).__name__}: {exc}",
                    reason="internal_error",
                )
                final = self._attempt(
                    intent, receiver.kind, attempt, AttemptOutcome.FAILED, final=True, error=error
                )
                return await self._settle(intent, final, error.reason)
            else:
                final = self._attempt(
                    intent,
                    receiver.kind,
                    attempt,
                    AttemptOutcome.DELIVERED,
                    final=True,
                    status_code=status,
                )
                return await self._settle(intent, final)
