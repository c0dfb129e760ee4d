"""The predictor's Prometheus metrics, on a registry per service instance (tests run several)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PredictorMetrics"]

# Sub-millisecond buckets: the hot path is expected to answer in about a millisecond.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class PredictorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "flywheel_predictor_requests",
            "Prediction requests by task and HTTP status.",
            ["task", "status"],
            registry=r,
        )
        self.rows = Counter(
            "flywheel_predictor_rows", "Rows scored, by task.", ["task"], registry=r
        )
        self.latency = Histogram(
            "flywheel_predictor_latency_seconds",
            "Time to answer a prediction request, in the handler.",
            ["task"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "flywheel_predictor_cache",
            "Prediction cache lookups by result.",
            ["result"],
            registry=r,
        )
        self.unknown_categories = Counter(
            "flywheel_predictor_unknown_categories",
            "Category values the model never saw (scored as missing).",
            ["task", "feature"],
            registry=r,
        )
        self.model_version = Gauge(
            "flywheel_predictor_model_version", "Served model version.", ["task"], registry=r
        )
        self.model_swaps = Counter(
            "flywheel_predictor_model_swaps", "Model versions swapped in.", ["task"], registry=r
        )
        self.model_load_failures = Counter(
            "flywheel_predictor_model_load_failures",
            "Model versions that could not be loaded (the previous one kept serving).",
            ["task"],
            registry=r,
        )
        self.redis_up = Gauge(
            "flywheel_predictor_redis_up", "1 while Redis answers, else 0.", registry=r
        )
        self.log_sent = Counter(
            "flywheel_predictor_log_sent", "Predictions sent to predictions.log.", registry=r
        )
        self.log_dropped = Counter(
            "flywheel_predictor_log_dropped",
            "Predictions not logged because the bounded queue was full or Kafka refused them.",
            ["reason"],
            registry=r,
        )
        self.log_queue = Gauge(
            "flywheel_predictor_log_queue", "Predictions waiting to be logged.", registry=r
        )
        self.batch_requests = Counter(
            "flywheel_predictor_batch_requests",
            "Offline batch requests answered on predictions.results, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.online_updates = Counter(
            "flywheel_predictor_online_feature_updates",
            "Entity feature records written to Redis.",
            registry=r,
        )

        # Label children bound once per task/status: ``.labels()`` costs several µs
        # per call (label checks, a lock), and the hot path would pay it three times.
        self._requests_for: dict[tuple[str, int], Any] = {}
        self._latency_for: dict[str, Any] = {}
        self._rows_for: dict[str, Any] = {}

    def answered(self, task: str, status: int, seconds: float) -> None:
        """Count one prediction request of ``task`` and observe its latency."""
        try:
            requests = self._requests_for[task, status]
        except KeyError:
            requests = self._requests_for[task, status] = self.requests.labels(task, str(status))
        requests.inc()
        try:
            latency = self._latency_for[task]
        except KeyError:
            latency = self._latency_for[task] = self.latency.labels(task)
        latency.observe(seconds)

    def scored(self, task: str, rows: int = 1) -> None:
        """Count ``rows`` rows scored for ``task``."""
        try:
            counter = self._rows_for[task]
        except KeyError:
            counter = self._rows_for[task] = self.rows.labels(task)
        counter.inc(rows)
