"""The poll loop's timing decisions (no Kafka: the service constructor does no I/O)."""

from __future__ import annotations

import asyncio
import time

import orjson

from flywheel.tasks import TaskDefinition
from stream_ingest.buffers import PartitionState
from stream_ingest.config import Settings
from stream_ingest.dedup import DedupWindow
from stream_ingest.service import MAX_POLL_WAIT_S, MIN_POLL_WAIT_S, StreamIngest
from stream_ingest.validation import EventValidator

TASK = TaskDefinition.model_validate(
    {
        "name": "loop.task",
        "objective": "binary",
        "label": {"type": "bool"},
        "features": [{"name": "x", "type": "int"}],
        "flush": {"max_events": 1_000, "max_age_s": 0.5},
    }
)


def service_with_buffer(started_ago_s: float) -> StreamIngest:
    service = StreamIngest(Settings(), serve_http=False)
    state = PartitionState(
        "feedback.events",
        0,
        EventValidator({TASK.name: TASK}.get, max_event_bytes=10_000),
        DedupWindow(10),
        dlq_max_age_s=1.0,
    )
    body = {"event_id": "e1", "task": TASK.name, "features": {"x": 1}, "label": True}
    state.add(b"k", orjson.dumps(body), 0, 0, now=time.monotonic() - started_ago_s)
    service._states[0] = state
    return service


def test_an_idle_service_polls_at_the_longest_wait() -> None:
    assert StreamIngest(Settings(), serve_http=False)._poll_wait() == MAX_POLL_WAIT_S


def test_the_poll_wakes_up_when_the_oldest_buffer_is_due() -> None:
    wait = service_with_buffer(started_ago_s=0.3)._poll_wait()
    assert 0.1 < wait <= 0.2 + 0.05


async def test_an_overdue_partition_with_a_commit_in_flight_does_not_spin() -> None:
    # Regression: getmany(timeout_ms=0) returns without yielding, so a zero wait here
    # starved the in-flight commit (and SIGTERM handling) forever.
    service = service_with_buffer(started_ago_s=5.0)
    assert service._poll_wait() == 0.0  # due and flushable: flush now
    commit = asyncio.get_running_loop().create_future()
    service._inflight[0] = asyncio.ensure_future(commit)
    assert service._poll_wait() == MIN_POLL_WAIT_S
    commit.cancel()
