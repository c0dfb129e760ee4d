"""A deleted task's events go to the DLQ (``unknown_task``), as ``flywheel tasks delete``
promises: stream-ingest follows the tasks topic while it runs."""

from __future__ import annotations

from flywheel.catalog import delete_task
from tests.integration.stream_ingest.conftest import Ingest, feedback, task_definition

TASK = "deleted.task"


async def test_events_of_a_task_deleted_while_running_are_dead_lettered(ingest: Ingest) -> None:
    await ingest.apply(task_definition(TASK, max_events=1, max_age_s=0.3))
    key = TASK.encode()
    async with ingest.running() as service:
        await ingest.publish([(key, feedback("before", TASK))])

        async def batched() -> bool:
            return len(await ingest.batches()) == 1

        await ingest.until(batched, timeout_s=15)
        await delete_task(ingest.config, TASK)

        async def forgotten() -> bool:
            return service.catalog.get(TASK) is None

        await ingest.until(forgotten, timeout_s=10)
        await ingest.publish([(key, feedback("after", TASK))])

        async def dead() -> bool:
            return len(await ingest.dead_letters()) == 1

        await ingest.until(dead, timeout_s=15)
    (letter,) = await ingest.dead_letters()
    assert letter.reason == "unknown_task" and letter.field == "task"
    assert len(await ingest.batches()) == 1  # nothing more was batched for it
