"""Scale-out under faults, bounded: a private stack with two replicas each of
stream-ingest, trainer and predictor; one replica of each SIGKILLed and restarted
while feedback and predictions flow; then the end-to-end audit of bench/scale_out_audit.py.

The bench runs the full rolling kill (every replica) several times and reports the
numbers; this test keeps the suite's budget by killing three processes, one per
service, on both sides of each consumer group (replica 1 and replica 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scale_out_audit import AuditPlan, run_once

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAN = AuditPlan(
    feedback_rate=300.0,
    prediction_rate=20.0,
    min_events=3_000,
    pause_s=0.5,
    settle=False,  # rolling: the next kill follows as soon as the last one is healthy
    steady_s=1.0,
    drain_timeout_s=90.0,
    victims=("stream-ingest", "trainer-2", "predictor"),
)


async def test_rolling_sigkill_loses_no_event_counts_none_twice_fails_no_prediction(
    tmp_path: Path,
) -> None:
    report = await run_once(PLAN, tmp_path)
    audit, predictions = report["audit"], report["predictions"]["all"]
    context = {k: v for k, v in report.items() if k != "audit"}
    assert report["drained"], context
    assert [kill["replica"] for kill in report["kills"]] == list(PLAN.victims)
    assert all(kill["outcome"] == "killed" for kill in report["kills"]), report["kills"]
    assert audit["events_published"] >= PLAN.min_events
    assert audit["events_lost"] == 0, audit["examples"]
    assert audit["events_counted_twice"] == 0, audit["examples"]
    assert audit["events_unexpected"] == 0, audit["examples"]
    for task, trained in audit["trainer"].items():
        assert trained["duplicate_versions"] == [], task
        assert trained["events_trained_increasing"], task
        assert trained["trained_twice"] == 0 and trained["not_trained"] == 0, (task, trained)
    assert (
        audit["events_trained_total"]
        + sum(t["events_dead_lettered_by_trainer"] for t in audit["trainer"].values())
        == audit["events_batched"]
    )
    assert predictions["requests"] > 0
    assert predictions["failed"] == 0, report["predictions"]["errors"]
    assert report["passed"]
