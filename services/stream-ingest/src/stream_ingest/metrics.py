"""Prometheus metrics of one stream-ingest process (its own registry, so tests can run many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IngestMetrics"]


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "flywheel_ingest_events_in", "Records consumed from feedback.events.", registry=r
        )
        self.events_out = Counter(
            "flywheel_ingest_events_out",
            "Events committed to training.batches.",
            ["task"],
            registry=r,
        )
        self.dead_letters = Counter(
            "flywheel_ingest_dead_letters",
            "Records committed to feedback.dlq, by reason.",
            ["reason"],
            registry=r,
        )
        self.batches = Counter(
            "flywheel_ingest_batches", "TrainingBatch messages committed.", registry=r
        )
        self.transactions_aborted = Counter(
            "flywheel_ingest_transactions_aborted",
            "Flush transactions that failed and were replayed from the committed offset.",
            registry=r,
        )
        self.buffer_depth = Gauge(
            "flywheel_ingest_buffer_depth",
            "Accepted events waiting in buffers, by task.",
            ["task"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "flywheel_ingest_consumer_lag",
            "Records behind the end of feedback.events, by partition.",
            ["partition"],
            registry=r,
        )
        self.flush_seconds = Histogram(
            "flywheel_ingest_flush_seconds",
            "Time to commit one partition's flush transaction.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.freshness_seconds = Histogram(
            "flywheel_ingest_freshness_seconds",
            "From the oldest event's publish time to its batch being committed.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )

    def heartbeat_gauges(self) -> dict[str, float]:
        """This process's totals for its heartbeat, summed over labels.

        A record consumed is a request; one dead-lettered is an error (the optimizer's
        per-service error ratio). Read from the registry every few seconds, never on
        the hot path.
        """
        wanted = {
            "flywheel_ingest_events_in": "requests_total",
            "flywheel_ingest_dead_letters": "request_errors_total",
            "flywheel_ingest_events_out": "events_out_total",
            "flywheel_ingest_batches": "batches_total",
            "flywheel_ingest_transactions_aborted": "transactions_aborted_total",
            "flywheel_ingest_buffer_depth": "buffered_events",
        }
        gauges = dict.fromkeys(wanted.values(), 0.0)
        for family in self.registry.collect():
            name = wanted.get(family.name)
            if name is None:
                continue
            for sample in family.samples:
                # Counters expose _total and _created samples; gauges their bare name.
                if sample.name in (family.name, family.name + "_total"):
                    gauges[name] += sample.value
        return gauges
