"""What the optimizer measures: per task, per model version, per service, per consumer group.

:class:`PerformanceTracker` turns predictions, labels, heartbeats and consumer lag into
rolling series, and :meth:`PerformanceTracker.snapshot` reads every window out as
:class:`MetricSample` values. Those samples are the one source for the
``metrics.performance`` events, the Prometheus gauges, the threshold rules and the
recommendations, so all four always agree.

Metric names (``window`` is 1m, 5m or 1h):

* per task: ``predictions``, ``throughput_per_s``, ``latency_p50_ms`` / ``p95`` / ``p99``,
  ``cache_hit_rate``, ``cached_latency_p50_ms``, ``uncached_latency_p50_ms``,
  ``labeled``, ``live_accuracy`` (classes) or ``live_mae`` / ``live_rmse`` (numbers),
  ``model_error_rate``, ``baseline_error_rate`` and ``baseline_accuracy`` (the
  no-change baseline: predict the task's previous label);
* per task and ``version`` label: ``live_accuracy`` / ``live_mae``, ``labeled``;
* per service instance: ``rss_bytes`` (max), ``cpu_percent`` (mean), each heartbeat
  gauge (latest), and ``error_rate`` from ``request_errors_total`` / ``requests_total``;
* per consumer ``group`` and ``topic`` labels: ``consumer_lag`` (max in the window).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from flywheel.events import FeedbackEvent, Heartbeat, PredictionLog
from flywheel.tasks import Objective
from optimizer.join import JoinedLabel, LabelJoin, Outcome, infer_objective, score_outcome
from optimizer.windows import WINDOWS, RollingSeries, WindowTotals

__all__ = ["MetricSample", "PerformanceTracker", "TaskShape"]

# What the optimizer knows about a task: its objective and its label classes.
TaskShape = tuple[Objective, tuple[str, ...]]
ShapeLookup = Callable[[str], TaskShape | None]
_K = TypeVar("_K", str, tuple[str, int | None], tuple[str, str])
QUANTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One metric over one window, for a task or a service (or a consumer group)."""

    name: str
    window: str
    value: float
    task: str | None = None
    service: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # How many observations the value rests on (rules and advice ignore thin evidence).
    samples: int = 0

    def key(self) -> tuple[str, ...]:
        extra = tuple(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return (self.name, self.window, self.task or "", self.service or "", *extra)


@dataclass(frozen=True, slots=True)
class JudgedLabel:
    """A joined label and its outcome, for the drift detector."""

    task: str
    version: int
    outcome: Outcome


class PerformanceTracker:
    def __init__(
        self,
        *,
        shape_of: ShapeLookup = lambda _task: None,
        slot_s: float = 5.0,
        join_ttl_s: float = 3600.0,
        join_max_waiting: int = 200_000,
        max_series: int = 10_000,
    ) -> None:
        self._shape_of = shape_of
        self._slot_s = slot_s
        self._max_series = max_series
        self.join = LabelJoin(ttl_s=join_ttl_s, max_waiting=join_max_waiting)
        self._served: dict[str, RollingSeries] = {}
        self._judged: dict[tuple[str, int | None], RollingSeries] = {}
        self._services: dict[tuple[str, str], RollingSeries] = {}
        self._lag: dict[tuple[str, str], RollingSeries] = {}
        self._latest_gauges: dict[tuple[str, str], dict[str, float]] = {}
        self._objectives: dict[str, Objective] = {}
        self._previous_label: dict[str, object] = {}
        self.unjudgeable = 0
        self.series_refused = 0

    def _series(self, table: dict[_K, RollingSeries], key: _K) -> RollingSeries | None:
        series = table.get(key)
        if series is None:
            if self.series_count() >= self._max_series:
                # Unbounded label cardinality (a task per user id) must not eat the heap.
                self.series_refused += 1
                return None
            series = table[key] = RollingSeries(slot_s=self._slot_s)
        return series

    def series_count(self) -> int:
        return len(self._served) + len(self._judged) + len(self._services) + len(self._lag)

    def tasks(self) -> list[str]:
        return sorted(self._served.keys() | {t for t, _ in self._judged})

    # -- observations ----------------------------------------------------------------

    def observe_prediction(self, prediction: PredictionLog, now: float) -> JudgedLabel | None:
        series = self._series(self._served, prediction.task)
        if series is not None:
            latency = {"latency": prediction.latency_ms}
            latency["cached" if prediction.cached else "uncached"] = prediction.latency_ms
            series.add(
                prediction.served_at.timestamp(),
                now,
                sums={"predictions": 1, "cache_hits": 1 if prediction.cached else 0},
                latencies=latency,
            )
        joined = self.join.add_prediction(prediction, now)
        return self._judge(joined, now) if joined else None

    def observe_feedback(self, event: FeedbackEvent, now: float) -> JudgedLabel | None:
        joined = self.join.add_label(event, now) if event.prediction_id else None
        judged = self._judge(joined, now) if joined else None
        # The no-change baseline's next guess is this label, whether joined or not.
        self._previous_label[event.task] = event.label
        return judged

    def _judge(self, joined: JoinedLabel, now: float) -> JudgedLabel | None:
        prediction, event = joined.prediction, joined.label
        shape = self._shape_of(prediction.task)
        objective, classes = shape if shape else (self._guess(prediction, event.label), ())
        outcome = score_outcome(objective, prediction.score, event.label, classes)
        if outcome is None:
            self.unjudgeable += 1
            return None
        self._objectives[prediction.task] = objective
        sums = {"labeled": 1.0, "errors": outcome.error, "squared_errors": outcome.error**2}
        previous = self._previous_label.get(event.task)
        if previous is not None:
            baseline = _baseline_outcome(objective, previous, event.label, classes)
            if baseline is not None:
                sums["baseline_labeled"] = 1.0
                sums["baseline_errors"] = baseline.error
        t = event.occurred_at.timestamp()
        for key in ((prediction.task, None), (prediction.task, prediction.model_version)):
            series = self._series(self._judged, key)
            if series is not None:
                series.add(t, now, sums=sums)
        return JudgedLabel(prediction.task, prediction.model_version, outcome)

    def _guess(self, prediction: PredictionLog, label: object) -> Objective:
        return self._objectives.get(prediction.task) or infer_objective(prediction.score, label)

    def observe_heartbeat(self, beat: Heartbeat, now: float) -> None:
        series = self._series(self._services, (beat.service, beat.instance))
        if series is None:
            return
        counters = {k: v for k, v in beat.gauges.items() if k.endswith("_total")}
        series.add(
            beat.at.timestamp(),
            now,
            sums={"beats": 1, "cpu_percent": beat.cpu_percent},
            maxima={"rss_bytes": float(beat.rss_bytes)},
            counters=counters,
        )
        self._latest_gauges[(beat.service, beat.instance)] = {
            k: v for k, v in beat.gauges.items() if k not in counters
        }

    def observe_lag(self, lag: dict[tuple[str, str], int], now: float) -> None:
        """``{(group, topic): messages behind}`` as measured at ``now``."""
        for (group, topic), behind in lag.items():
            # Kafka allows 255-character group ids; event labels stop at 128.
            series = self._series(self._lag, (group[:128], topic))
            if series is not None:
                series.add(now, now, maxima={"consumer_lag": float(behind)})

    def prune(self, now: float) -> None:
        self.join.expire(now)
        _prune(self._served, now)
        _prune(self._judged, now)
        _prune(self._services, now)
        _prune(self._lag, now)
        for key in list(self._latest_gauges):
            if key not in self._services:
                del self._latest_gauges[key]

    # -- read-out --------------------------------------------------------------------

    def snapshot(self, now: float) -> list[MetricSample]:
        samples: list[MetricSample] = []
        for window, length in WINDOWS.items():
            for task, series in self._served.items():
                samples += _served_samples(task, window, length, series.totals(length, now))
            for (task, version), series in self._judged.items():
                objective = self._objectives.get(task, Objective.BINARY)
                samples += _judged_samples(
                    task, version, window, objective, series.totals(length, now)
                )
            for (service, instance), series in self._services.items():
                samples += self._service_samples(
                    service, instance, window, series.totals(length, now)
                )
            for (group, topic), series in self._lag.items():
                totals = series.totals(length, now)
                if "consumer_lag" in totals.maxima:
                    samples.append(
                        MetricSample(
                            "consumer_lag",
                            window,
                            totals.maxima["consumer_lag"],
                            labels={"group": group, "topic": topic},
                            samples=1,
                        )
                    )
        return samples

    def _service_samples(
        self, service: str, instance: str, window: str, totals: WindowTotals
    ) -> list[MetricSample]:
        beats = int(totals.sums["beats"])
        if beats == 0:
            return []
        labels = {"instance": instance}

        def sample(name: str, value: float) -> MetricSample:
            return MetricSample(name, window, value, service=service, labels=labels, samples=beats)

        out = [
            sample("rss_bytes", totals.maxima["rss_bytes"]),
            sample("cpu_percent", totals.sums["cpu_percent"] / beats),
        ]
        requests = totals.increases.get("requests_total", 0.0)
        if requests > 0:
            errors = totals.increases.get("request_errors_total", 0.0)
            out.append(sample("error_rate", errors / requests))
        for name, value in self._latest_gauges.get((service, instance), {}).items():
            out.append(sample(name, value))
        return out


def _prune(table: dict[_K, RollingSeries], now: float) -> None:
    for key in list(table):
        series = table[key]
        series.prune(now)
        if len(series) == 0:
            del table[key]


def _baseline_outcome(
    objective: Objective, previous: object, label: object, classes: tuple[str, ...]
) -> Outcome | None:
    if objective is Objective.BINARY:
        correct = bool(previous) == bool(label)
        return Outcome(0.0 if correct else 1.0, correct)
    if objective is Objective.MULTICLASS:
        correct = previous == label
        return Outcome(0.0 if correct else 1.0, correct)
    if isinstance(previous, int | float) and not isinstance(previous, bool):
        return score_outcome(objective, float(previous), label, classes)
    return None


def _served_samples(
    task: str, window: str, length: float, totals: WindowTotals
) -> list[MetricSample]:
    n = int(totals.sums["predictions"])
    if n == 0:
        return []

    def sample(name: str, value: float) -> MetricSample:
        return MetricSample(name, window, value, task=task, samples=n)

    out = [sample("predictions", n), sample("throughput_per_s", n / length)]
    hit_rate = totals.ratio("cache_hits", "predictions")
    if hit_rate is not None:
        out.append(sample("cache_hit_rate", hit_rate))
    sketch = totals.sketches.get("latency")
    if sketch is not None:
        for name, q in QUANTILES.items():
            value = sketch.quantile(q)
            if value is not None:
                out.append(sample(name, value))
    for kind in ("cached", "uncached"):
        part = totals.sketches.get(kind)
        median = part.quantile(0.5) if part is not None else None
        if part is not None and median is not None:
            out.append(
                MetricSample(f"{kind}_latency_p50_ms", window, median, task, samples=part.count)
            )
    return out


def _judged_samples(
    task: str, version: int | None, window: str, objective: Objective, totals: WindowTotals
) -> list[MetricSample]:
    n = int(totals.sums["labeled"])
    if n == 0:
        return []
    labels = {"version": str(version)} if version is not None else {}

    def sample(name: str, value: float, samples: int = n) -> MetricSample:
        return MetricSample(name, window, value, task=task, labels=labels, samples=samples)

    error = totals.sums["errors"] / n
    out = [sample("labeled", n)]
    numeric = objective in (Objective.REGRESSION, Objective.RANKING)
    if numeric:
        out += [
            sample("live_mae", error),
            sample("live_rmse", math.sqrt(totals.sums["squared_errors"] / n)),
        ]
    else:
        out.append(sample("live_accuracy", 1.0 - error))
    if version is not None:
        return out  # the per-version view is about the model, not the task's baseline
    out.append(sample("model_error_rate", error))
    base_n = int(totals.sums["baseline_labeled"])
    if base_n:
        base_error = totals.sums["baseline_errors"] / base_n
        out.append(sample("baseline_error_rate", base_error, base_n))
        if not numeric:
            out.append(sample("baseline_accuracy", 1.0 - base_error, base_n))
    return out
