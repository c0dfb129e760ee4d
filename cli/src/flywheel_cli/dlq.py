"""``flywheel dlq list | replay``: inspect and re-send rejected feedback.

``feedback.dlq`` holds one :class:`flywheel.events.DeadLetter` per record stream-ingest
refused, with the exact original bytes and key. Both verbs read it without a consumer
group (every partition assigned, from the beginning up to the end offsets seen at
start), so they never move anyone's committed offsets.

``replay`` re-publishes the selected originals, byte for byte and with their original
key, to ``feedback.events`` through the idempotent ``acks=all`` producer. The typical
case is ``unknown_task``: events that arrived before their task was applied, re-sent
after ``flywheel tasks apply``. Replaying is safe to repeat: stream-ingest de-duplicates
by ``event_id`` (per partition, within its dedup window, and a replay keeps the key and
so the partition), so an event that was already accepted goes back to the DLQ as
``duplicate_event_id`` instead of being trained on twice. An original that was
truncated (larger than 600 kB, see ``docs/stream-ingest.md``) cannot be replayed and
is skipped and counted, and so is a dead letter whose original did not come from
``feedback.events`` (the trainer's ``untrainable_batch`` letters hold a training batch).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from flywheel import serde
from flywheel.compacted import CompactedReader
from flywheel.errors import SerdeError
from flywheel.events import DeadLetter
from flywheel.kafka import MAX_MESSAGE_BYTES, KafkaConfig, make_producer, wait_for_kafka
from flywheel.topics import FEEDBACK_DLQ, FEEDBACK_EVENTS
from flywheel_cli.config import StackConfig

__all__ = [
    "LetterAt",
    "ReplayPlan",
    "is_truncated",
    "plan_replay",
    "read_dead_letters",
    "register",
    "select",
    "task_of",
]

# stream-ingest's marker for an original cut to its first 600 kB (stream_ingest.buffers).
TRUNCATED_PREFIX = "original truncated to its first "

_REPLAY_HELP = (
    "re-send selected originals (exact bytes and key) to feedback.events. Safe to "
    "repeat: stream-ingest de-duplicates by event_id, so an event already accepted "
    "returns to the DLQ as duplicate_event_id and is never trained on twice. "
    "Truncated originals (over 600 kB) and letters whose original did not come from "
    "feedback.events (e.g. the trainer's untrainable_batch) are skipped and counted."
)


@dataclass(frozen=True, slots=True)
class LetterAt:
    """A dead letter and where it sits in ``feedback.dlq``."""

    letter: DeadLetter
    partition: int
    offset: int


@dataclass(slots=True)
class ReplayPlan:
    """What a replay sends: ``(key, original)`` pairs, in DLQ order, and what it skips."""

    records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    matched: int = 0
    truncated: int = 0
    other_source: int = 0
    duplicates: int = 0


def is_truncated(letter: DeadLetter) -> bool:
    """True when stream-ingest kept only the head of the original (see docs/stream-ingest.md)."""
    return letter.error.startswith(TRUNCATED_PREFIX)


def task_of(letter: DeadLetter) -> str | None:
    """The task an original was sent for: its key (the contract), else its JSON ``task``."""
    if letter.original_key is not None:
        return letter.original_key
    try:
        body = orjson.loads(base64.b64decode(letter.original_b64))
    except (ValueError, orjson.JSONDecodeError):
        return None
    task = body.get("task") if isinstance(body, dict) else None
    return task if isinstance(task, str) else None


def select(
    letters: list[LetterAt], *, reason: str | None = None, task: str | None = None
) -> list[LetterAt]:
    """The letters matching every filter given, in the order they were read."""
    return [
        item
        for item in letters
        if (reason is None or item.letter.reason == reason)
        and (task is None or task_of(item.letter) == task)
    ]


def plan_replay(letters: list[LetterAt], *, source_topic: str) -> ReplayPlan:
    """Turn selected letters into records to send; skip truncated and identical originals
    and originals that were not read from ``source_topic`` (the broker-side feedback.events).

    Two letters with the same key and bytes are the same event (same ``event_id``), e.g.
    an event rejected again by an earlier replay: it is sent once.
    """
    plan = ReplayPlan(matched=len(letters))
    seen: set[tuple[bytes | None, bytes]] = set()
    for item in letters:
        if item.letter.source_topic != source_topic:
            plan.other_source += 1
            continue
        if is_truncated(item.letter):
            plan.truncated += 1
            continue
        key = item.letter.original_key.encode() if item.letter.original_key is not None else None
        record = (key, base64.b64decode(item.letter.original_b64))
        if record in seen:
            plan.duplicates += 1
            continue
        seen.add(record)
        plan.records.append(record)
    return plan


async def read_dead_letters(config: KafkaConfig) -> tuple[list[LetterAt], int]:
    """Every dead letter in ``feedback.dlq`` up to its current end, and how many were unreadable."""
    letters: list[LetterAt] = []
    unreadable = 0
    topic = config.topic(FEEDBACK_DLQ)
    position: dict[str, int] = {"partition": 0, "offset": 0}

    def on_record(key: bytes | None, value: bytes | None) -> None:
        nonlocal unreadable
        try:
            letter = serde.decode(DeadLetter, value or b"", max_bytes=2 * MAX_MESSAGE_BYTES)
        except SerdeError:
            unreadable += 1
            return
        letters.append(LetterAt(letter, position["partition"], position["offset"]))

    reader = _LocatingReader(config, topic, on_record, position)
    try:
        await reader.load()
    finally:
        await reader.stop()
    letters.sort(key=lambda item: (item.letter.at, item.partition, item.offset))
    return letters, unreadable


class _LocatingReader(CompactedReader):
    """A :class:`CompactedReader` that also reports each record's partition and offset."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        on_record: Callable[[bytes | None, bytes | None], None],
        position: dict[str, int],
    ) -> None:
        super().__init__(config, topic, on_record)
        self._position = position

    def _apply(self, records: Any) -> None:
        for record in records:
            self._position["partition"] = record.partition
            self._position["offset"] = record.offset
            super()._apply([record])


async def send_originals(config: KafkaConfig, records: list[tuple[bytes | None, bytes]]) -> None:
    """Publish ``records`` to ``feedback.events`` and wait until every one is acknowledged."""
    producer = make_producer(config)
    await producer.start()
    try:
        topic = config.topic(FEEDBACK_EVENTS)
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# ---- the command line ----------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = subparsers.add_parser("dlq", help="list or replay rejected feedback (feedback.dlq)")
    verbs = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = verbs.add_parser(
        "list", help="dead letters, oldest first (reads without a consumer group)"
    )
    listing.add_argument("--reason", help="only this reason, e.g. unknown_task")
    listing.add_argument("--limit", type=int, help="only the newest N")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    replay = verbs.add_parser("replay", help=_REPLAY_HELP, description=_REPLAY_HELP)
    replay.add_argument("--reason", help="only this reason, e.g. unknown_task")
    replay.add_argument("--task", help="only originals sent for this task (their key)")
    replay.add_argument("--dry-run", action="store_true", help="print what would be replayed")
    replay.set_defaults(func=_replay)


def _kafka() -> KafkaConfig:
    stack = StackConfig.from_env(os.environ, cwd=Path.cwd())
    return KafkaConfig(
        bootstrap_servers=stack.kafka_bootstrap,
        client_id="flywheel-cli",
        topic_prefix=stack.topic_prefix,
    )


async def _read(config: KafkaConfig) -> list[LetterAt]:
    await wait_for_kafka(config, timeout_s=15)
    letters, unreadable = await read_dead_letters(config)
    if unreadable:
        print(
            f"warning: {unreadable} record(s) in feedback.dlq are not dead letters", file=sys.stderr
        )
    return letters


def _summary(item: LetterAt) -> dict[str, Any]:
    out: dict[str, Any] = item.letter.model_dump(mode="json")
    out["dlq_partition"] = item.partition
    out["dlq_offset"] = item.offset
    out["truncated"] = is_truncated(item.letter)
    return out


def _line(item: LetterAt) -> str:
    letter = item.letter
    where = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
    error = letter.error if len(letter.error) <= 80 else letter.error[:77] + "..."
    return (
        f"{letter.at.isoformat()}  {letter.reason:<22} {letter.original_key or '-':<32} "
        f"{where}  {letter.field or '-'}  {error}"
    )


def _list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    letters = select(asyncio.run(_read(_kafka())), reason=args.reason)
    if args.limit is not None:
        letters = letters[-args.limit :]
    if args.json:
        print(json.dumps([_summary(item) for item in letters], indent=2))
        return 0
    for item in letters:
        print(_line(item))
    if not letters:
        print("no dead letters" + (f" with reason {args.reason}" if args.reason else ""))
    return 0


def _replay(args: argparse.Namespace) -> int:
    if args.reason is None and args.task is None:
        # Replaying everything would re-send broken records only to be refused again.
        print("error: say what to replay: --reason R and/or --task T", file=sys.stderr)
        return 2
    config = _kafka()
    selected = select(asyncio.run(_read(config)), reason=args.reason, task=args.task)
    plan = plan_replay(selected, source_topic=config.topic(FEEDBACK_EVENTS))
    skipped = (
        f"skipped {plan.truncated} truncated, {plan.duplicates} identical, "
        f"{plan.other_source} not from feedback.events"
    )
    if args.dry_run:
        for key, value in plan.records:
            shown = key.decode("utf-8", "replace") if key is not None else "-"
            print(f"would replay: key={shown} {len(value)} bytes")
        print(f"dry run: would replay {len(plan.records)} of {plan.matched} matching; {skipped}")
        return 0
    if plan.records:
        asyncio.run(send_originals(config, plan.records))
    print(f"replayed {len(plan.records)} of {plan.matched} matching; {skipped}")
    return 0
