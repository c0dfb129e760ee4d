"""Grouping, dedup and the notification log: which notification goes out, and when.

Pure logic with time passed in, so timers are tested in virtual time. Semantics follow
Alertmanager's dispatcher and dedup stage:

* An alert lands in one aggregation group per matching route (``continue``), keyed by
  the route and the values of its ``group_by`` labels.
* A new group flushes after ``group_wait`` (at once if its first alert is already older
  than that), then every ``group_interval``.
* A flush notifies the route's receiver only when the notification log says the
  receiver would learn something: a new firing alert, all alerts resolved, a newly
  resolved alert (if ``send_resolved``), or ``repeat_interval`` has passed.
* Silenced and inhibited alerts are left out of notifications but stay in the group.
* Resolved alerts leave the group after the flush that covered them.
* At most one flush per group is in flight: the next waits until it is settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerter.matchers import match_labels
from alerter.muting import Inhibitor, SilenceStore
from alerter.routing import Route
from alerter.state import (
    NotificationIntent,
    NotificationLogEntry,
    idempotency_key,
    nflog_key,
)
from flywheel.events import Alert, AlertState

__all__ = ["AggregationGroup", "Dispatcher", "Flush", "needs_update"]


@dataclass(slots=True)
class AggregationGroup:
    route: Route
    group_key: str
    labels: dict[str, str]
    alerts: dict[str, Alert] = field(default_factory=dict)
    next_flush: datetime | None = None
    has_flushed: bool = False
    busy: bool = False


@dataclass(frozen=True, slots=True)
class Flush:
    """One flush of a group: the alerts it saw and the notification it decided on."""

    group_key: str
    snapshot: dict[str, Alert]
    intent: NotificationIntent | None


def group_key_for(route: Route, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{route.route_id}:{{{inner}}}"


def needs_update(
    entry: NotificationLogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    *,
    send_resolved: bool,
    repeat_interval: float,
    now: datetime,
) -> bool:
    """Alertmanager's DedupStage.needsUpdate."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # Everything resolved: tell the receiver if it knew of any firing alert (the
        # log is cleared even when send_resolved is off, as Alertmanager does).
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at + timedelta(seconds=repeat_interval) <= now


class Dispatcher:
    """The alert store, the aggregation groups and the notification log."""

    def __init__(self, tree: Route, silences: SilenceStore, inhibitor: Inhibitor) -> None:
        self.tree = tree
        self.silences = silences
        self.inhibitor = inhibitor
        self.alerts: dict[str, Alert] = {}
        self.groups: dict[str, AggregationGroup] = {}
        self.nflog: dict[str, NotificationLogEntry] = {}

    def insert(self, alert: Alert, now: datetime) -> bool:
        """Add or update ``alert``; False when it is a duplicate of what is stored."""
        if self.alerts.get(alert.fingerprint) == alert:
            return False
        self.alerts[alert.fingerprint] = alert
        labels = match_labels(alert)
        for route in self.tree.match(labels):
            group_labels = route.group_labels(labels)
            key = group_key_for(route, group_labels)
            group = self.groups.get(key)
            if group is None:
                group = AggregationGroup(route, key, group_labels)
                old = alert.starts_at + timedelta(seconds=route.group_wait) <= now
                group.next_flush = now if old else now + timedelta(seconds=route.group_wait)
                self.groups[key] = group
            group.alerts[alert.fingerprint] = alert
        return True

    def due(self, now: datetime) -> list[AggregationGroup]:
        return [
            g
            for g in self.groups.values()
            if not g.busy and g.next_flush is not None and g.next_flush <= now
        ]

    def next_deadline(self) -> datetime | None:
        deadlines = [g.next_flush for g in self.groups.values() if not g.busy and g.next_flush]
        return min(deadlines) if deadlines else None

    def muted(self, alert: Alert, now: datetime) -> bool:
        if alert.state is not AlertState.FIRING:
            return False
        return bool(self.silences.silenced_by(alert, now)) or self.inhibitor.inhibited(
            alert, self.alerts.values()
        )

    def plan(self, group: AggregationGroup, now: datetime) -> Flush:
        """Start a flush of ``group``: decide whether its receiver must be notified."""
        group.busy = True
        group.has_flushed = True
        group.next_flush = now + timedelta(seconds=group.route.group_interval)
        snapshot = dict(group.alerts)
        visible = [a for a in snapshot.values() if not self.muted(a, now)]
        firing = frozenset(a.fingerprint for a in visible if a.state is AlertState.FIRING)
        resolved = frozenset(a.fingerprint for a in visible if a.state is AlertState.RESOLVED)
        route = group.route
        entry = self.nflog.get(nflog_key(route.receiver, group.group_key))
        if not needs_update(
            entry,
            firing,
            resolved,
            send_resolved=route.send_resolved,
            repeat_interval=route.repeat_interval,
            now=now,
        ):
            return Flush(group.group_key, snapshot, None)
        sequence = entry.sequence + 1 if entry else 1
        shown = [
            a
            for a in sorted(visible, key=lambda a: (a.starts_at, a.fingerprint))
            if a.state is AlertState.FIRING or route.send_resolved
        ]
        intent = NotificationIntent(
            idempotency_key=idempotency_key(
                route.receiver,
                group.group_key,
                sequence,
                {a.fingerprint: a.starts_at for a in visible if a.fingerprint in firing},
                resolved,
            ),
            receiver=route.receiver,
            group_key=group.group_key,
            route_id=route.route_id,
            sequence=sequence,
            group_labels=group.labels,
            alerts=shown,
            firing=firing,
            resolved=resolved,
            send=bool(shown),
            created_at=now,
        )
        return Flush(group.group_key, snapshot, intent)

    def resume(self, intent: NotificationIntent) -> Flush:
        """A flush for an intent restored after a restart; its group waits for it."""
        group = self.groups.get(intent.group_key)
        if group is not None:
            group.busy = True
        return Flush(intent.group_key, {a.fingerprint: a for a in intent.alerts}, intent)

    def settle(self, flush: Flush, now: datetime) -> tuple[list[str], list[str]]:
        """Finish ``flush`` (its intent delivered or dead-lettered). Return what can be
        forgotten: resolved alerts no group holds any more, and the notification-log
        keys of groups that are gone with nothing left firing at their receiver."""
        if flush.intent is not None:
            entry = flush.intent.log_entry(now)
            self.nflog[entry.key()] = entry
        group = self.groups.get(flush.group_key)
        if group is not None:
            group.busy = False
            for fp, alert in flush.snapshot.items():
                if alert.state is AlertState.RESOLVED and group.alerts.get(fp) == alert:
                    del group.alerts[fp]
            if not group.alerts:
                del self.groups[flush.group_key]
        stale_log: list[str] = []
        if flush.group_key not in self.groups:
            for key, entry in list(self.nflog.items()):
                if entry.group_key == flush.group_key and not entry.firing:
                    del self.nflog[key]
                    stale_log.append(key)
        held = {fp for g in self.groups.values() for fp in g.alerts}
        forgotten = [
            fp
            for fp in flush.snapshot
            if fp not in held and fp in self.alerts and self.alerts[fp].state is AlertState.RESOLVED
        ]
        for fp in forgotten:
            del self.alerts[fp]
        return forgotten, stale_log
