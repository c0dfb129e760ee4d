"""The pure parts of `flywheel dlq`: filters, truncation, replay planning."""

from __future__ import annotations

import base64
import json

from flywheel.events import DeadLetter
from flywheel_cli.__main__ import build_parser
from flywheel_cli.dlq import LetterAt, is_truncated, plan_replay, select, task_of


def _at(
    reason: str,
    original: bytes,
    *,
    key: str | None = "t1",
    error: str = "x",
    offset: int = 0,
    source: str = "feedback.events",
) -> LetterAt:
    letter = DeadLetter(
        reason=reason,
        error=error,
        original_b64=base64.b64encode(original).decode(),
        original_key=key,
        source_topic=source,
        source_partition=0,
        source_offset=offset,
    )
    return LetterAt(letter, partition=0, offset=offset)


TRUNCATED = "original truncated to its first 600000 of 700000 bytes (sha256 ab12); event too large"


def test_truncation_is_read_from_the_error() -> None:
    assert is_truncated(_at("oversized", b"x", error=TRUNCATED).letter)
    assert not is_truncated(_at("oversized", b"x", error="event too large").letter)


def test_task_is_the_key_else_the_json_task() -> None:
    assert task_of(_at("unknown_task", b"{}", key="k").letter) == "k"
    body = json.dumps({"task": "from-body"}).encode()
    assert task_of(_at("unknown_task", body, key=None).letter) == "from-body"
    assert task_of(_at("broken_json", b"{nope", key=None).letter) is None


def test_select_applies_every_filter() -> None:
    letters = [
        _at("unknown_task", b"a", key="t1"),
        _at("unknown_task", b"b", key="t2"),
        _at("broken_json", b"c", key="t1"),
    ]
    assert len(select(letters)) == 3
    assert [i.letter.original_key for i in select(letters, reason="unknown_task")] == ["t1", "t2"]
    assert [i.letter.reason for i in select(letters, task="t1")] == ["unknown_task", "broken_json"]
    assert select(letters, reason="broken_json", task="t2") == []


def test_plan_skips_truncated_and_identical_originals_keeping_order_and_keys() -> None:
    letters = [
        _at("unknown_task", b"a", key="t1", offset=0),
        _at("unknown_task", b"big", key="t1", error=TRUNCATED, offset=1),
        _at("unknown_task", b"b", key=None, offset=2),
        _at("unknown_task", b"a", key="t1", offset=3),  # the same event, rejected again
        _at("unknown_task", b"a", key="t2", offset=4),  # same bytes, another key: sent
    ]
    trainer = _at("untrainable_batch", b"batch", offset=5, source="training.batches")
    plan = plan_replay([*letters, trainer], source_topic="feedback.events")
    assert plan.records == [(b"t1", b"a"), (None, b"b"), (b"t2", b"a")]
    assert (plan.matched, plan.truncated, plan.duplicates, plan.other_source) == (6, 1, 1, 1)


def test_parser_knows_the_dlq_verbs() -> None:
    args = build_parser().parse_args(["dlq", "replay", "--reason", "unknown_task", "--dry-run"])
    assert (args.reason, args.task, args.dry_run) == ("unknown_task", None, True)
    args = build_parser().parse_args(["dlq", "list", "--json", "--limit", "5"])
    assert (args.json, args.limit, args.reason) == (True, 5, None)
