"""The optimizer's Prometheus series, read from its latest snapshot at scrape time.

A custom collector (rather than long-lived labelled gauges) means a task or service
that went away simply stops being exported instead of freezing at its last value.
Latencies are exported in seconds, per Prometheus convention; ratios end in
``_ratio``. The full list, and which dashboard panel reads which, is in
``docs/observability.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from optimizer.advice import ChampionFacts, Recommendation
from optimizer.tracker import QUANTILES, MetricSample

__all__ = ["OptimizerMetrics", "SnapshotCollector"]

P = "flywheel_optimizer_"

# tracker metric -> (series name, help, multiplier to the exported unit)
_TASK_SERIES: dict[str, tuple[str, str, float]] = {
    "predictions": ("predictions", "Predictions served in the window", 1.0),
    "throughput_per_s": ("throughput_per_second", "Predictions per second", 1.0),
    "cache_hit_rate": ("cache_hit_ratio", "Share of predictions served from cache", 1.0),
    "labeled": ("labeled", "Predictions joined to a label in the window", 1.0),
    "live_accuracy": ("live_accuracy_ratio", "Accuracy of joined predictions", 1.0),
    "live_mae": ("live_mae", "Mean absolute error of joined predictions", 1.0),
    "live_rmse": ("live_rmse", "Root mean squared error of joined predictions", 1.0),
    "model_error_rate": ("model_error_rate", "Model error (0/1 or absolute)", 1.0),
    "baseline_error_rate": ("baseline_error_rate", "No-change baseline error", 1.0),
    "baseline_accuracy": ("baseline_accuracy_ratio", "No-change baseline accuracy", 1.0),
}
_SERVICE_SERIES: dict[str, tuple[str, str, float]] = {
    "rss_bytes": ("service_rss_bytes", "Max resident memory from heartbeats", 1.0),
    "cpu_percent": ("service_cpu_percent", "Mean CPU percent from heartbeats", 1.0),
    "error_rate": ("service_error_ratio", "request_errors_total / requests_total", 1.0),
}


@dataclass
class Snapshot:
    samples: list[MetricSample] = field(default_factory=list)
    champions: list[ChampionFacts] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)


class SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        families: dict[str, GaugeMetricFamily] = {}

        def family(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            if name not in families:
                families[name] = GaugeMetricFamily(P + name, doc, labels=labels)
            return families[name]

        for s in snap.samples:
            if s.task is not None and "version" in s.labels:
                if s.name in ("live_accuracy", "live_mae", "labeled"):
                    name, doc, _ = _TASK_SERIES[s.name]
                    family(
                        f"version_{name}",
                        f"{doc}, per model version",
                        ["task", "version", "window"],
                    ).add_metric([s.task, s.labels["version"], s.window], s.value)
            elif s.task is not None and s.name in QUANTILES:
                family(
                    "prediction_latency_seconds",
                    "Prediction latency quantile",
                    ["task", "window", "quantile"],
                ).add_metric([s.task, s.window, str(QUANTILES[s.name])], s.value / 1000.0)
            elif s.task is not None and s.name.endswith("cached_latency_p50_ms"):
                family(
                    "prediction_latency_median_seconds",
                    "Median latency by cache outcome",
                    ["task", "window", "cached"],
                ).add_metric(
                    [s.task, s.window, str(s.name.startswith("cached")).lower()], s.value / 1000
                )
            elif s.task is not None and s.name in _TASK_SERIES:
                name, doc, scale = _TASK_SERIES[s.name]
                family(name, doc, ["task", "window"]).add_metric(
                    [s.task, s.window], s.value * scale
                )
            elif s.service is not None and s.name in _SERVICE_SERIES:
                name, doc, scale = _SERVICE_SERIES[s.name]
                family(name, doc, ["service", "instance", "window"]).add_metric(
                    [s.service, s.labels.get("instance", ""), s.window], s.value * scale
                )
            elif s.service is not None and s.window == "1m":
                family(
                    "service_gauge",
                    "Latest heartbeat gauge of a service",
                    ["service", "instance", "gauge"],
                ).add_metric([s.service, s.labels.get("instance", ""), s.name], s.value)
            elif s.name == "consumer_lag":
                family(
                    "consumer_lag_records",
                    "Max records behind in the window",
                    ["group", "topic", "window"],
                ).add_metric([s.labels["group"], s.labels["topic"], s.window], s.value)
        for c in snap.champions:
            family("champion_version", "Current champion version", ["task"]).add_metric(
                [c.task], c.version
            )
            family("champion_trees", "Trees in the champion model", ["task"]).add_metric(
                [c.task], c.trees
            )
            family("champion_model_bytes", "Size of the champion's text", ["task"]).add_metric(
                [c.task], c.model_bytes
            )
        recs = family("recommendations", "Active recommendations (1 each)", ["kind", "target"])
        for r in snap.recommendations:
            recs.add_metric([r.kind, r.target], 1.0)
        yield from families.values()


class OptimizerMetrics:
    """Everything the optimizer exports, on its own registry (tests run several at once)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.snapshot = SnapshotCollector()
        self.registry.register(self.snapshot)
        # process_resident_memory_bytes & co., as on services using the default registry.
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.records = Counter(P + "records", "Records consumed", ["topic"], registry=r)
        self.invalid = Counter(
            P + "invalid_records", "Records that could not be read", ["topic", "reason"], registry=r
        )
        self.joined = Counter(P + "labels_joined", "Labels joined to predictions", registry=r)
        self.join_dropped = Counter(
            P + "join_dropped", "Predictions or labels that never joined", ["reason"], registry=r
        )
        self.join_waiting = Gauge(P + "join_waiting", "Items waiting to be joined", registry=r)
        self.drift = Counter(P + "drift_detections", "Drift detections", ["task"], registry=r)
        self.transitions = Counter(
            P + "alert_transitions", "Alerts emitted", ["alertname", "state"], registry=r
        )
        self.firing = Gauge(
            P + "alerts_firing",
            "Alerts the optimizer has firing",
            ["alertname", "severity"],
            registry=r,
        )
        self.emitted = Counter(
            P + "performance_metrics", "PerformanceMetric events sent", registry=r
        )
        self.last_tick = Gauge(
            P + "last_evaluation_timestamp_seconds", "Last evaluation", registry=r
        )
