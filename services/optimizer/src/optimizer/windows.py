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

    def subtract(self, other: LatencySketch) -> None:
        """Remove ``other``'s values (which must have been merged in before)."""
        self._buckets.subtract(other._buckets)
        for index in [i for i, n in self._buckets.items() if n <= 0]:
            del self._buckets[index]
        self.count -= other.count

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


@dataclass
class _Running:
    """One window's running totals: every slot from ``first`` on, added as it arrives."""

    first: int | None = None
    sums: Counter[str] = field(default_factory=Counter)
    sketches: dict[str, LatencySketch] = field(default_factory=dict)


class RollingSeries:
    """One series (a task, a task version, a service instance) in time slots.

    Sums and latency sketches of each standard window are kept as running totals:
    an observation is added to every window it falls in, and a slot is subtracted
    once it slides out, so reading a window costs nothing per slot. (Merging up to 720
    slot sketches per window at every evaluation was the first design; the benchmark
    in bench/optimizer_windows.py showed it dominating the optimizer's CPU.) Maxima and
    counter increases cannot be subtracted and are read by scanning the slots; only
    heartbeat and lag series, at one observation per few seconds, carry them.
    """

    def __init__(
        self, *, slot_s: float = 5.0, horizon_s: float = 3600.0, relative_accuracy: float = 0.01
    ) -> None:
        if slot_s <= 0 or horizon_s < slot_s:
            raise ValueError("need 0 < slot_s <= horizon_s")
        self.slot_s = slot_s
        self.horizon_s = horizon_s
        self._relative_accuracy = relative_accuracy
        self._slots: dict[int, Slot] = {}
        # Slots holding maxima or counters: the only ones a window read has to scan.
        self._extreme_slots: set[int] = set()
        self._running = {length: _Running() for length in WINDOWS.values() if length <= horizon_s}
        self.last_seen: float | None = None

    def _first(self, window_s: float, now: float) -> int:
        return math.ceil((now - window_s) / self.slot_s)

    def _indices(self, start: int, stop: int) -> list[int]:
        """Slot indices in [start, stop), in whichever way is cheaper to find them."""
        if stop - start <= len(self._slots):
            return [i for i in range(start, stop) if i in self._slots]
        return [i for i in self._slots if start <= i < stop]

    def _advance(self, now: float) -> None:
        """Subtract the slots that slid out of each window by ``now``."""
        for length, running in self._running.items():
            first = self._first(length, now)
            if running.first is None or first <= running.first:
                running.first = first if running.first is None else running.first
                continue
            for index in self._indices(running.first, first):
                slot = self._slots[index]
                running.sums.subtract(slot.sums)
                for name, sketch in slot.sketches.items():
                    running.sketches[name].subtract(sketch)
            running.first = first

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
        t = min(t, now)
        if t < now - self.horizon_s:
            return False  # older than the longest window: it can never be reported
        # Slide first, so a late observation in an already-evicted slot is never
        # subtracted from a window it was not added to.
        self._advance(now)
        index = math.floor(t / self.slot_s)
        slot = self._slots.get(index)
        if slot is None:
            slot = self._slots[index] = Slot()
        self.last_seen = t if self.last_seen is None else max(self.last_seen, t)
        targets: list[Slot | _Running] = [slot]
        targets += [r for r in self._running.values() if r.first is not None and index >= r.first]
        for target in targets:
            if sums:
                target.sums.update(sums)
            for name, value in (latencies or {}).items():
                sketch = target.sketches.get(name)
                if sketch is None:
                    sketch = target.sketches[name] = LatencySketch(self._relative_accuracy)
                sketch.add(value)
        for name, value in (maxima or {}).items():
            slot.maxima[name] = max(value, slot.maxima.get(name, value))
        for name, value in (counters or {}).items():
            slot.latest[name] = value
        if maxima or counters:
            self._extreme_slots.add(index)
        return True

    def prune(self, now: float) -> None:
        self._advance(now)
        oldest = math.floor((now - self.horizon_s) / self.slot_s)
        for index in self._indices(min(self._slots, default=oldest), oldest):
            del self._slots[index]
            self._extreme_slots.discard(index)

    def __len__(self) -> int:
        return len(self._slots)

    def totals(self, window_s: float, now: float) -> WindowTotals:
        """The slots that start within ``window_s`` before ``now``, merged."""
        self._advance(now)
        first = self._first(window_s, now)
        running = self._running.get(window_s)
        if running is not None:
            sums = +running.sums  # unary plus drops the zero entries subtraction leaves
            sketches = {k: v for k, v in running.sketches.items() if v.count > 0}
        else:
            sums, sketches = Counter(), {}
            for index in (i for i in self._slots if i >= first):
                sums.update(self._slots[index].sums)
                for name, sketch in self._slots[index].sketches.items():
                    sketches.setdefault(name, LatencySketch(self._relative_accuracy)).merge(sketch)
        maxima: dict[str, float] = {}
        first_latest: dict[str, float] = {}
        last_latest: dict[str, float] = {}
        for index in sorted(i for i in self._extreme_slots if i >= first):
            slot = self._slots[index]
            for name, value in slot.maxima.items():
                maxima[name] = max(value, maxima.get(name, value))
            for name, value in slot.latest.items():
                first_latest.setdefault(name, value)
                last_latest[name] = value
        increases: dict[str, float] = {}
        for name, last in last_latest.items():
            delta = last - first_latest[name]
            # A counter that went down was reset by a restart: count from zero again.
            increases[name] = delta if delta >= 0 else last
        return WindowTotals(sums, maxima, sketches, increases)
