"""Rolling time windows (1 min, 5 min, 1 h) built from fixed time slots.

Every observation lands in the slot of its *event* time (``served_at``,
``occurred_at``, a heartbeat's ``at``), so a replay after a restart rebuilds the
same windows, and tests drive the clock by passing ``now``. A window is the merge of
the slots that start inside it; memory is bounded by ``horizon_s / slot_s`` slots
per series whatever the traffic.

Latency percentiles come from :class:`LatencySketch`, a log-bucketed histogram
(the DDSketch idea): every quantile is within ``relative_accuracy`` of the exact
one, sketches merge by adding counts, and the bucket count grows only with the
log of the value range.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["WINDOWS", "LatencySketch", "RollingSeries", "Slot", "WindowTotals"]

# The windows every metric is reported over: name -> length in seconds.
WINDOWS: dict[str, float] = {"1m": 60.0, "5m": 300.0, "1h": 3600.0}

# Latencies below this are counted as this (a sub-microsecond latency is a clock artefact).
_MIN_LATENCY_MS = 1e-3


class LatencySketch:
    """Quantiles of positive values with bounded relative error, in mergeable buckets."""

    __slots__ = ("_buckets", "_gamma_log", "count", "relative_accuracy")

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._gamma_log = math.log(gamma)
        self._buckets: Counter[int] = Counter()
        self.count = 0

    def add(self, value_ms: float, n: int = 1) -> None:
        value = max(value_ms, _MIN_LATENCY_MS)
        self._buckets[math.ceil(math.log(value) / self._gamma_log)] += n
        self.count += n

    def merge(self, other: LatencySketch) -> None:
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("sketches of different accuracy cannot merge")
        self._buckets.update(other._buckets)
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1), or None when the sketch is empty."""
        if not 0 <= q <= 1:
            raise ValueError("q must be in [0, 1]")
        if self.count == 0:
            return None
        # Same rank convention as numpy's "lower" interpolation: the value at floor(q*(n-1)).
        rank = math.floor(q * (self.count - 1))
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen > rank:
                # The bucket covers (gamma^(i-1), gamma^i]; this point is within
                # relative_accuracy of every value in it.
                gamma = math.exp(self._gamma_log)
                return 2 * math.exp(index * self._gamma_log) / (gamma + 1)
        raise AssertionError("unreachable: rank is below count")  # pragma: no cover


@dataclass
class Slot:
    """What happened in one ``slot_s``-long interval."""

    sums: Counter[str] = field(default_factory=Counter)
    maxima: dict[str, float] = field(default_factory=dict)
    # The latest value of each monotonically increasing counter seen in this slot.
    latest: dict[str, float] = field(default_factory=dict)
    sketches: dict[str, LatencySketch] = field(default_factory=dict)


@dataclass
class WindowTotals:
    """One window's merged slots."""

    sums: Counter[str]
    maxima: dict[str, float]
    sketches: dict[str, LatencySketch]
    increases: dict[str, float]

    def ratio(self, numerator: str, denominator: str) -> float | None:
        total = self.sums[denominator]
        return self.sums[numerator] / total if total > 0 else None


class RollingSeries:
    """One series (a task, a task version, a service instance) in time slots."""

    def __init__(
        self, *, slot_s: float = 5.0, horizon_s: float = 3600.0, relative_accuracy: float = 0.01
    ) -> None:
        if slot_s <= 0 or horizon_s < slot_s:
            raise ValueError("need 0 < slot_s <= horizon_s")
        self.slot_s = slot_s
        self.horizon_s = horizon_s
        self._relative_accuracy = relative_accuracy
        self._slots: dict[int, Slot] = {}
        self.last_seen: float | None = None

    def _slot(self, t: float, now: float) -> Slot | None:
        if t < now - self.horizon_s:
            return None  # older than the longest window: it can never be reported
        index = math.floor(t / self.slot_s)
        slot = self._slots.get(index)
        if slot is None:
            slot = self._slots[index] = Slot()
        self.last_seen = t if self.last_seen is None else max(self.last_seen, t)
        return slot

    def add(
        self,
        t: float,
        now: float,
        *,
        sums: dict[str, float] | None = None,
        maxima: dict[str, float] | None = None,
        counters: dict[str, float] | None = None,
        latencies: dict[str, float] | None = None,
    ) -> bool:
        """Record an observation at event time ``t``; False if it is too old to matter."""
        slot = self._slot(min(t, now), now)
        if slot is None:
            return False
        if sums:
            slot.sums.update(sums)
        for name, value in (maxima or {}).items():
            slot.maxima[name] = max(value, slot.maxima.get(name, value))
        for name, value in (counters or {}).items():
            slot.latest[name] = value
        for name, value in (latencies or {}).items():
            sketch = slot.sketches.get(name)
            if sketch is None:
                sketch = slot.sketches[name] = LatencySketch(self._relative_accuracy)
            sketch.add(value)
        return True

    def prune(self, now: float) -> None:
        oldest = math.floor((now - self.horizon_s) / self.slot_s)
        for index in [i for i in self._slots if i < oldest]:
            del self._slots[index]

    def __len__(self) -> int:
        return len(self._slots)

    def totals(self, window_s: float, now: float) -> WindowTotals:
        """Merge the slots that start within ``window_s`` before ``now``."""
        first = math.ceil((now - window_s) / self.slot_s)
        sums: Counter[str] = Counter()
        maxima: dict[str, float] = {}
        sketches: dict[str, LatencySketch] = {}
        first_latest: dict[str, float] = {}
        last_latest: dict[str, float] = {}
        for index in sorted(i for i in self._slots if i >= first):
            slot = self._slots[index]
            sums.update(slot.sums)
            for name, value in slot.maxima.items():
                maxima[name] = max(value, maxima.get(name, value))
            for name, sketch in slot.sketches.items():
                merged = sketches.get(name)
                if merged is None:
                    merged = sketches[name] = LatencySketch(self._relative_accuracy)
                merged.merge(sketch)
            for name, value in slot.latest.items():
                first_latest.setdefault(name, value)
                last_latest[name] = value
        increases: dict[str, float] = {}
        for name, last in last_latest.items():
            delta = last - first_latest[name]
            # A counter that went down was reset by a restart: count from zero again.
            increases[name] = delta if delta >= 0 else last
        return WindowTotals(sums, maxima, sketches, increases)
