"""Buffers flush at a task's max_events, at its max_age_s, and split under the size limit."""

from __future__ import annotations

import orjson

from tests.integration.stream_ingest.conftest import Ingest, feedback, task_definition


async def test_flush_by_size_keeps_the_remainder_buffered(ingest: Ingest) -> None:
    await ingest.apply(task_definition("flush.size", max_events=10, max_age_s=3600))
    key = b"flush.size"
    async with ingest.running() as service:
        await ingest.publish([(key, feedback(f"s{i}", "flush.size")) for i in range(10)])

        async def one_full_batch() -> bool:
            return len(await ingest.batches()) == 1

        await ingest.until(one_full_batch)
        await ingest.publish([(key, feedback(f"s{i}", "flush.size")) for i in range(10, 15)])

        async def five_buffered() -> bool:
            return sum(s.buffered for s in service._states.values()) == 5

        await ingest.until(five_buffered)
        assert [len(b) for b in await ingest.batches()] == [10]
    # stop() commits what is still buffered: a SIGTERM loses nothing.
    batches = await ingest.batches()
    assert [len(b) for b in batches] == [10, 5]
    assert [e for b in batches for e in b.event_ids] == [f"s{i}" for i in range(15)]
    first = batches[0]
    assert first.task == "flush.size"
    assert first.columns["steps"] == [3] * 10
    assert first.columns["agent"] == ["planner"] * 10
    assert first.labels == [True] * 10
    assert first.oldest_event_at is not None


async def test_an_overfull_poll_is_cut_at_max_events(ingest: Ingest) -> None:
    await ingest.apply(task_definition("flush.cut", max_events=10, max_age_s=3600))
    records = [(b"flush.cut", feedback(f"c{i}", "flush.cut")) for i in range(25)]
    await ingest.publish(records)  # before the start: the first poll sees all 25
    async with ingest.running():

        async def all_out() -> bool:
            return sum(len(b) for b in await ingest.batches()) == 25

        await ingest.until(all_out)
    sizes = [len(b) for b in await ingest.batches()]
    assert sum(sizes) == 25
    assert max(sizes) == 10


async def test_flush_by_age(ingest: Ingest) -> None:
    await ingest.apply(task_definition("flush.age", max_events=100_000, max_age_s=0.5))
    async with ingest.running():
        await ingest.publish([(b"flush.age", feedback(f"a{i}", "flush.age")) for i in range(7)])

        async def aged_out() -> bool:
            return len(await ingest.batches()) == 1

        await ingest.until(aged_out, timeout_s=15)
        assert len((await ingest.batches())[0]) == 7


async def test_big_batches_are_split_under_the_message_limit(ingest: Ingest) -> None:
    await ingest.apply(task_definition("flush.split", max_events=200, max_age_s=3600))
    agent = "x" * 250  # ~300 bytes per event: 200 events need ~60 kB
    records = [
        (
            b"flush.split",
            orjson.dumps(
                {
                    "event_id": f"b{i}",
                    "task": "flush.split",
                    "features": {"steps": i, "retries": 1.0, "agent": agent},
                    "label": False,
                }
            ),
        )
        for i in range(200)
    ]
    async with ingest.running(ingest_max_batch_bytes=20_000, ingest_max_event_bytes=10_000):
        await ingest.publish(records)

        async def all_out() -> bool:
            return sum(len(b) for b in await ingest.batches()) == 200

        await ingest.until(all_out)
    raw = await ingest.read_batches_raw()
    assert len(raw) > 3
    assert all(len(value) <= 20_000 for value in raw)
    ids = [e for b in await ingest.batches() for e in b.event_ids]
    assert ids == [f"b{i}" for i in range(200)]
