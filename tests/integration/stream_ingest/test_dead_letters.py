"""Every kind of bad record lands in feedback.dlq once, with its reason, field and bytes."""

from __future__ import annotations

import base64

import orjson

from flywheel.topics import FEEDBACK_EVENTS
from tests.integration.heartbeats import wait_for_heartbeat
from tests.integration.stream_ingest.conftest import Ingest, feedback, task_definition

TASK = "dlq.task"


async def test_each_invalid_record_gets_its_own_reason(ingest: Ingest) -> None:
    await ingest.apply(task_definition(TASK, max_events=1_000, max_age_s=0.3))
    key = TASK.encode()
    bad: dict[str, tuple[bytes | None, str | None]] = {
        "broken_json": (b'{"event_id": "x1", "task": ', None),
        "non_finite": (feedback("x2", TASK).replace(b'"retries":0.5', b'"retries":NaN'), None),
        "oversized": (feedback("x3", TASK) + b" " * 70_000, None),
        "unknown_task": (feedback("x4", "dlq.nobody-applied-this"), "task"),
        "wrong_type": (feedback("x5", TASK, steps="twelve"), "features.steps"),
        "invalid_field": (orjson.dumps({"event_id": "x6", "task": TASK}), "features"),
        "unknown_schema_version": (
            orjson.dumps({"schema_version": 9, "event_id": "x7", "task": TASK}),
            "schema_version",
        ),
        "empty_payload": (None, None),
        "duplicate_event_id": (feedback("ok-1", TASK), "event_id"),
    }
    records = [(key, feedback("ok-1", TASK)), (key, feedback("ok-2", TASK))]
    records += [(key, value) for value, _ in bad.values()]
    async with ingest.running(heartbeat_interval_s=0.5):
        await ingest.publish(records)

        async def all_dead() -> bool:
            return len(await ingest.dead_letters()) >= len(bad)

        await ingest.until(all_dead)
        # Its heartbeat counts every record consumed, and the dead ones as errors.
        beat = await wait_for_heartbeat(
            ingest.config,
            "stream-ingest",
            lambda b: b.gauges.get("request_errors_total") == len(bad),
        )
        assert beat.gauges["requests_total"] == len(records)
        assert beat.gauges["events_out_total"] == 2
        assert beat.rss_bytes > 0
    letters = await ingest.dead_letters()
    by_reason = {letter.reason: letter for letter in letters}
    assert sorted(by_reason) == sorted(bad)
    assert len(letters) == len(bad)
    for reason, (value, field) in bad.items():
        letter = by_reason[reason]
        assert base64.b64decode(letter.original_b64) == (value or b""), reason
        assert letter.original_key == TASK
        assert letter.source_topic == ingest.config.topic(FEEDBACK_EVENTS)
        if field is not None:
            assert letter.field == field, reason
        assert letter.error
    accepted = [eid for batch in await ingest.batches() for eid in batch.event_ids]
    assert sorted(accepted) == ["ok-1", "ok-2"]
