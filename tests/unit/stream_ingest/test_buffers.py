from __future__ import annotations

import base64

import orjson

from flywheel import serde
from flywheel.events import DeadLetter, TrainingBatch
from flywheel.tasks import TaskDefinition
from stream_ingest.buffers import PartitionState
from stream_ingest.dedup import DedupWindow
from stream_ingest.validation import EventValidator


def task(name: str, *, max_events: int = 4, max_age_s: float = 2.0) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "name": name,
            "objective": "regression",
            "label": {"type": "float"},
            "features": [
                {"name": "x", "type": "float"},
                {"name": "note", "type": "category", "nullable": True},
            ],
            "flush": {"max_events": max_events, "max_age_s": max_age_s},
        }
    )


def event(event_id: str, name: str, x: float = 1.0, note: str | None = None) -> bytes:
    features: dict[str, object] = {"x": x}
    if note is not None:
        features["note"] = note
    body = {"event_id": event_id, "task": name, "features": features, "label": x * 2}
    return orjson.dumps(body)


def state(*tasks: TaskDefinition, window: DedupWindow | None = None) -> PartitionState:
    catalog = {t.name: t for t in tasks}
    validator = EventValidator(catalog.get, max_event_bytes=64_000)
    return PartitionState(
        "feedback.events", 2, validator, window or DedupWindow(100), dlq_max_age_s=1.0
    )


def test_accepted_events_become_columns_per_task() -> None:
    s = state(task("a"), task("b"))
    assert s.add(b"a", event("1", "a", 1.0, "n"), 10, 1_000, now=0.0) is None
    assert s.add(b"b", event("2", "b", 2.0), 11, 2_000, now=0.0) is None
    assert s.add(b"a", event("3", "a", 3.0), 12, 3_000, now=0.0) is None
    flush = s.drain(900_000)
    assert flush.next_offset == 13
    assert flush.accepted_ids == ["1", "2", "3"]
    assert flush.oldest_published_ms == 1_000
    batches = [serde.decode(TrainingBatch, r.value) for r in flush.batches]
    a = next(b for b in batches if b.task == "a")
    assert a.event_ids == ["1", "3"]
    assert a.columns == {"x": [1.0, 3.0], "note": ["n", None]}
    assert a.labels == [2.0, 6.0]
    assert a.batch_id == "p2.o10-12.a"
    assert a.oldest_event_at is not None
    assert a.oldest_event_at.timestamp() == 1.0
    assert not s.pending
    assert s.buffered == 0


def test_due_by_size_by_age_and_for_dead_letters() -> None:
    s = state(task("a", max_events=2, max_age_s=5.0))
    s.add(b"a", event("1", "a"), 0, 0, now=100.0)
    assert not s.due(100.0)
    assert s.deadline() == 105.0
    assert s.due(105.0)
    s.add(b"a", event("2", "a"), 1, 0, now=100.5)
    assert s.due(100.5)
    s.drain(900_000)
    assert s.add(b"a", b"{", 2, 0, now=200.0) == "broken_json"
    assert not s.due(200.5)
    assert s.due(201.0)


def test_duplicates_are_dead_lettered_with_the_original_bytes() -> None:
    window = DedupWindow(100)
    window.add("seen-before-the-crash")
    s = state(task("a"), window=window)
    raw = event("seen-before-the-crash", "a")
    assert s.add(b"a", raw, 7, 0, now=0.0) == "duplicate_event_id"
    assert s.add(b"a", event("new", "a"), 8, 0, now=0.0) is None
    assert s.add(b"a", event("new", "a"), 9, 0, now=0.0) == "duplicate_event_id"
    flush = s.drain(900_000)
    assert flush.accepted_ids == ["new"]
    letters = [serde.decode(DeadLetter, r.value) for r in flush.dead_letters]
    assert [(d.reason, d.source_offset, d.field) for d in letters] == [
        ("duplicate_event_id", 7, "event_id"),
        ("duplicate_event_id", 9, "event_id"),
    ]
    assert base64.b64decode(letters[0].original_b64) == raw
    assert letters[0].source_partition == 2
    assert flush.dead_letter_reasons == ["duplicate_event_id", "duplicate_event_id"]


def test_batches_are_cut_at_max_events_and_split_under_max_bytes() -> None:
    s = state(task("a", max_events=4))
    for i in range(10):
        s.add(b"a", event(f"e{i}", "a", float(i), "y" * 200), i, 0, now=0.0)
    flush = s.drain(1_000)
    batches = [serde.decode(TrainingBatch, r.value) for r in flush.batches]
    assert all(len(r.value) <= 1_000 for r in flush.batches)
    assert all(len(b) <= 4 for b in batches)
    assert len(batches) > 3  # 4-event chunks did not fit 1,000 bytes and were halved
    assert [e for b in batches for e in b.event_ids] == [f"e{i}" for i in range(10)]
    assert sum(r.events for r in flush.batches) == 10


def test_a_redefined_task_keeps_old_rows_in_their_own_batch() -> None:
    old, new = task("a"), task("a", max_events=9)
    catalog = {"a": old}
    s = PartitionState(
        "feedback.events",
        0,
        EventValidator(catalog.get, max_event_bytes=64_000),
        DedupWindow(10),
        dlq_max_age_s=1.0,
    )
    s.add(b"a", event("1", "a"), 0, 0, now=0.0)
    catalog["a"] = new
    s.add(b"a", event("2", "a"), 1, 0, now=0.0)
    batches = [serde.decode(TrainingBatch, r.value) for r in s.drain(900_000).batches]
    assert [b.event_ids for b in batches] == [["1"], ["2"]]


def test_oversized_originals_are_truncated_with_their_hash() -> None:
    validator = EventValidator({}.get, max_event_bytes=1_024)
    s = PartitionState("feedback.events", 0, validator, DedupWindow(10), dlq_max_age_s=1.0)
    huge = b"x" * 700_000
    assert s.add(None, huge, 0, 0, now=0.0) == "oversized"
    record = s.drain(900_000).dead_letters[0]
    assert len(record.value) < 1_000_000
    letter = serde.decode(DeadLetter, record.value, max_bytes=1_000_000)
    assert "truncated" in letter.error
    assert "sha256" in letter.error
    assert letter.original_key is None
