"""The ingest heartbeat reports this process's totals, summed over labels."""

from __future__ import annotations

from stream_ingest.metrics import IngestMetrics


def test_gauges_sum_the_counters_over_their_labels() -> None:
    metrics = IngestMetrics()
    metrics.events_in.inc(10)
    metrics.events_out.labels("a").inc(4)
    metrics.events_out.labels("b").inc(3)
    metrics.dead_letters.labels("broken_json").inc(2)
    metrics.dead_letters.labels("wrong_type").inc(1)
    metrics.batches.inc(2)
    metrics.buffer_depth.labels("a").set(5)
    metrics.buffer_depth.labels("b").set(1)

    assert metrics.heartbeat_gauges() == {
        "requests_total": 10,
        "request_errors_total": 3,
        "events_out_total": 7,
        "batches_total": 2,
        "transactions_aborted_total": 0,
        "buffered_events": 6,
    }


def test_a_fresh_process_reports_zeros() -> None:
    assert set(IngestMetrics().heartbeat_gauges().values()) == {0.0}
