"""Where the alerter makes things durable, behind one small interface.

:class:`KafkaJournal` writes through a single *transactional* producer, so each step is
atomic on the broker:

* ``save_alerts``  - the accepted alerts (``alerts.state``), rejected inputs
  (``alerts.dlq``) and the consumer offsets of ``alerts``, in one transaction: an
  alert is acknowledged exactly when it is stored.
* ``save_intent``  - a notification decided but not yet settled.
* ``record_attempt`` - an audit record on ``alerts.notifications``.
* ``settle``       - the final audit record, the receiver's notification-log entry, the
  intent's tombstone and (if it failed) the dead letter, in one transaction.

The transactional id is fixed per deployment, so a restarted alerter fences its
SIGKILLed predecessor: a zombie can never write a late outcome.

:class:`MemoryJournal` keeps the same records in lists, for unit tests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import BaseModel

from alerter.state import NotificationIntent, NotificationLogEntry, Silence
from flywheel.alerting import DLQ_KIND_HEADER, NotificationAttempt, NotificationDeadLetter
from flywheel.compacted import CompactedReader
from flywheel.events import Alert, DeadLetter
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.serde import decode, encode
from flywheel.topics import ALERTS_DLQ, ALERTS_NOTIFICATIONS, ALERTS_STATE

__all__ = ["Journal", "KafkaJournal", "MemoryJournal", "RestoredState"]

log = logging.getLogger(__name__)

STATE_MAX_BYTES = 8 * 1024 * 1024

# (topic, key, value or None for a tombstone, headers)
Record = tuple[str, str, bytes | None, list[tuple[str, bytes]] | None]

M = TypeVar("M", bound=BaseModel)


@dataclass
class RestoredState:
    alerts: dict[str, Alert] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    nflog: dict[str, NotificationLogEntry] = field(default_factory=dict)
    intents: dict[str, NotificationIntent] = field(default_factory=dict)


def _upsert(target: dict[str, M], key: str, value: bytes | None, model: type[M]) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = decode(model, value, max_bytes=STATE_MAX_BYTES)


class Journal(Protocol):
    async def save_alerts(
        self,
        alerts: list[Alert],
        rejected: list[DeadLetter],
        offsets: dict[TopicPartition, int],
        group_id: str | None,
    ) -> None: ...

    async def save_intent(self, intent: NotificationIntent) -> None: ...

    async def record_attempt(self, attempt: NotificationAttempt) -> None: ...

    async def settle(
        self,
        intent: NotificationIntent,
        final: NotificationAttempt,
        entry: NotificationLogEntry,
        dead_letter: NotificationDeadLetter | None,
    ) -> None: ...

    async def forget(self, fingerprints: list[str], nflog_keys: list[str]) -> None: ...

    async def save_silence(self, silence: Silence) -> None: ...

    async def delete_silences(self, silence_ids: list[str]) -> None: ...


class MemoryJournal:
    """An in-memory journal with the same contract (unit tests)."""

    def __init__(self) -> None:
        self.state = RestoredState()
        self.attempts: list[NotificationAttempt] = []
        self.dead_letters: list[NotificationDeadLetter] = []
        self.rejected: list[DeadLetter] = []
        self.committed: dict[TopicPartition, int] = {}

    async def save_alerts(
        self,
        alerts: list[Alert],
        rejected: list[DeadLetter],
        offsets: dict[TopicPartition, int],
        group_id: str | None,
    ) -> None:
        for alert in alerts:
            self.state.alerts[alert.fingerprint] = alert
        self.rejected.extend(rejected)
        self.committed.update(offsets)

    async def save_intent(self, intent: NotificationIntent) -> None:
        self.state.intents[intent.idempotency_key] = intent

    async def record_attempt(self, attempt: NotificationAttempt) -> None:
        self.attempts.append(attempt)

    async def settle(
        self,
        intent: NotificationIntent,
        final: NotificationAttempt,
        entry: NotificationLogEntry,
        dead_letter: NotificationDeadLetter | None,
    ) -> None:
        self.attempts.append(final)
        self.state.nflog[entry.key()] = entry
        self.state.intents.pop(intent.idempotency_key, None)
        if dead_letter is not None:
            self.dead_letters.append(dead_letter)

    async def forget(self, fingerprints: list[str], nflog_keys: list[str]) -> None:
        for fp in fingerprints:
            self.state.alerts.pop(fp, None)
        for key in nflog_keys:
            self.state.nflog.pop(key, None)

    async def save_silence(self, silence: Silence) -> None:
        self.state.silences[silence.id] = silence

    async def delete_silences(self, silence_ids: list[str]) -> None:
        for silence_id in silence_ids:
            self.state.silences.pop(silence_id, None)


@dataclass
class _PendingWrite:
    records: list[Record]
    offsets: dict[TopicPartition, int]
    group_id: str | None
    done: asyncio.Future[None]


class KafkaJournal:
    def __init__(self, config: KafkaConfig, transactional_id: str) -> None:
        self._config = config
        self._transactional_id = transactional_id
        self._producer: AIOKafkaProducer | None = None
        # aiokafka runs one transaction at a time per producer.
        self._lock = asyncio.Lock()
        self._pending: list[_PendingWrite] = []
        self._committer: asyncio.Task[None] | None = None
        self._state_topic = config.topic(ALERTS_STATE)
        self._audit_topic = config.topic(ALERTS_NOTIFICATIONS)
        self._dlq_topic = config.topic(ALERTS_DLQ)

    async def load(self) -> RestoredState:
        """Read ``alerts.state`` to its end: everything the last run made durable."""
        restored = RestoredState()

        def apply(key: bytes | None, value: bytes | None) -> None:
            if key is None:
                return
            text = key.decode("utf-8")
            kind, _, ident = text.partition("/")
            if kind == "alert":
                _upsert(restored.alerts, ident, value, Alert)
            elif kind == "silence":
                _upsert(restored.silences, ident, value, Silence)
            elif kind == "nflog":
                _upsert(restored.nflog, text, value, NotificationLogEntry)
            elif kind == "intent":
                _upsert(restored.intents, ident, value, NotificationIntent)

        reader = CompactedReader(self._config, self._state_topic, apply)
        try:
            await reader.load()
        finally:
            await reader.stop()
        return restored

    async def start(self) -> None:
        producer = make_producer(self._config, transactional_id=self._transactional_id)
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._committer is not None and not self._committer.done():
            # Let a transaction in flight finish: its callers were promised durability.
            await asyncio.wait([self._committer], timeout=10)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaJournal.start() first")
        return self._producer

    async def _write(
        self,
        records: list[Record],
        offsets: dict[TopicPartition, int] | None = None,
        group_id: str | None = None,
    ) -> None:
        """Make ``records`` (and ``offsets``) durable atomically; return once committed.

        Group commit: writes that arrive while a transaction is in flight are committed
        together in the next one. Each caller's records still land all-or-nothing (a
        transaction holding several callers' writes is a superset of each), and a
        caller returns only after the transaction holding its writes committed.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_PendingWrite(records, offsets or {}, group_id, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending(), name="journal")
        await asyncio.shield(future)

    async def _commit_pending(self) -> None:
        producer = self._require()
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending, []
                offsets: dict[str, dict[TopicPartition, int]] = {}
                for write in batch:
                    if write.group_id and write.offsets:
                        merged = offsets.setdefault(write.group_id, {})
                        for tp, offset in write.offsets.items():
                            merged[tp] = max(merged.get(tp, -1), offset)
                try:
                    async with producer.transaction():
                        for write in batch:
                            for topic, key, value, headers in write.records:
                                await producer.send(
                                    topic, value=value, key=key.encode(), headers=headers
                                )
                        for group_id, group_offsets in offsets.items():
                            await producer.send_offsets_to_transaction(
                                {tp: off + 1 for tp, off in group_offsets.items()}, group_id
                            )
                except Exception as exc:
                    for write in batch:
                        if not write.done.done():
                            write.done.set_exception(exc)
                    continue
                for write in batch:
                    if not write.done.done():
                        write.done.set_result(None)

    async def save_alerts(
        self,
        alerts: list[Alert],
        rejected: list[DeadLetter],
        offsets: dict[TopicPartition, int],
        group_id: str | None,
    ) -> None:
        records: list[Record] = [
            (self._state_topic, f"alert/{a.fingerprint}", encode(a), None) for a in alerts
        ]
        records += [
            (self._dlq_topic, d.original_key or "", encode(d), [(DLQ_KIND_HEADER, b"input")])
            for d in rejected
        ]
        await self._write(records, offsets, group_id)

    async def save_intent(self, intent: NotificationIntent) -> None:
        await self._write([(self._state_topic, intent.key(), encode(intent), None)])

    async def record_attempt(self, attempt: NotificationAttempt) -> None:
        await self._write([(self._audit_topic, attempt.idempotency_key, encode(attempt), None)])

    async def settle(
        self,
        intent: NotificationIntent,
        final: NotificationAttempt,
        entry: NotificationLogEntry,
        dead_letter: NotificationDeadLetter | None,
    ) -> None:
        records: list[Record] = [
            (self._audit_topic, final.idempotency_key, encode(final), None),
            (self._state_topic, entry.key(), encode(entry), None),
            (self._state_topic, intent.key(), None, None),
        ]
        if dead_letter is not None:
            records.append(
                (
                    self._dlq_topic,
                    dead_letter.idempotency_key,
                    encode(dead_letter),
                    [(DLQ_KIND_HEADER, b"notification")],
                )
            )
        await self._write(records)

    async def forget(self, fingerprints: list[str], nflog_keys: list[str]) -> None:
        topic = self._state_topic
        tombstones: list[Record] = [(topic, f"alert/{fp}", None, None) for fp in fingerprints]
        tombstones += [(topic, key, None, None) for key in nflog_keys]
        if tombstones:
            await self._write(tombstones)

    async def save_silence(self, silence: Silence) -> None:
        await self._write([(self._state_topic, f"silence/{silence.id}", encode(silence), None)])

    async def delete_silences(self, silence_ids: list[str]) -> None:
        topic = self._state_topic
        await self._write([(topic, f"silence/{sid}", None, None) for sid in silence_ids])
