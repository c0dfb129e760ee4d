"""Follows the ``tasks`` topic so a deleted task stops being served.

``flywheel tasks delete NAME`` writes a tombstone to the compacted ``tasks`` topic.
Each replica reads the topic at start-up (before loading champions) and follows it:

* a tombstone retires the task: its model is dropped at once (predict and
  ``GET /v1/tasks/{task}`` answer 404 ``task_deleted``, ``/v1/tasks`` no longer lists
  it, ``models.published`` announcements for it are ignored) and its champion and
  model keys are removed from Redis. ``models.registry`` keeps its history;
* a definition for a retired task (re-applied) reinstates it. The registry's champion
  is served again only if it was trained for the same definition: same objective and
  the same features (names, types, nullability, in order). Otherwise the task waits
  for the trainer's next champion, announced on ``models.published`` as usual.

Definitions of tasks that were never deleted change nothing here: a task the catalog
does not know (models published without ``flywheel tasks apply``) is served as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flywheel import serde
from flywheel.catalog import MAX_DEFINITION_BYTES
from flywheel.compacted import CompactedReader
from flywheel.errors import FlywheelError
from flywheel.events import ModelVersion
from flywheel.kafka import KafkaConfig
from flywheel.tasks import TaskDefinition
from flywheel.topics import TASKS
from predictor.sources import ModelSource
from predictor.store import ModelStore

__all__ = ["TaskWatch", "serves_definition"]

log = logging.getLogger(__name__)


def serves_definition(model: ModelVersion, task: TaskDefinition) -> bool:
    """Whether ``model`` answers requests shaped by ``task`` (same objective and features)."""
    return model.objective == task.objective and tuple(model.feature_schema) == task.features


class TaskWatch:
    """Retires deleted tasks in the :class:`ModelStore` and cleans their Redis keys."""

    def __init__(self, config: KafkaConfig, store: ModelStore, source: ModelSource) -> None:
        self._store = store
        self._source = source
        self._reader = CompactedReader(config, config.topic(TASKS), self.apply)
        # Redis work, in topic order: (task, None) forget it, (task, definition) restore it.
        self._work: asyncio.Queue[tuple[str, TaskDefinition | None]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read the topic to its end: call before the champions are loaded."""
        await self._reader.load()
        retired = self._store.retired()
        if retired:
            log.info("deleted tasks not served", extra={"tasks": retired})

    def follow(self) -> None:
        """Keep following the topic and start the Redis work queued so far."""
        self._reader.follow()
        self._worker = asyncio.create_task(self._run(), name="tasks.watch")

    def on_redis_back(self) -> None:
        """Redis answers again (maybe rebuilt from the registry): forget retired tasks again."""
        for task in self._store.retired():
            self._work.put_nowait((task, None))

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One ``tasks`` record: the store changes at once, Redis work is queued."""
        if key is None:
            return
        task = key.decode("utf-8", "replace")
        if value is None:
            if self._store.retire(task):
                log.warning("task deleted: its model is no longer served", extra={"task": task})
            self._work.put_nowait((task, None))
            return
        if not self._store.is_retired(task):
            return
        try:
            definition = serde.decode(TaskDefinition, value, max_bytes=MAX_DEFINITION_BYTES)
        except FlywheelError as exc:
            log.error("unreadable tasks record; %s stays deleted: %s", task, exc)
            return
        self._store.reinstate(task)
        log.info("deleted task applied again", extra={"task": task})
        self._work.put_nowait((task, definition))

    async def _run(self) -> None:
        while True:
            await self._handle(*await self._work.get())

    async def handle_pending(self) -> int:
        """Do the Redis work queued so far (the follower does it as it comes); return how many."""
        done = 0
        while not self._work.empty():
            await self._handle(*self._work.get_nowait())
            done += 1
        return done

    async def _handle(self, task: str, definition: TaskDefinition | None) -> None:
        try:
            if definition is None:
                await self._forget(task)
            else:
                await self._restore(task, definition)
        except Exception:
            log.exception("tasks watch: %s not handled", task)

    async def _forget(self, task: str) -> None:
        # Re-checked: the task may have been applied again since this was queued.
        if self._store.is_retired(task) and await self._source.forget(task):
            log.info("deleted task's model keys removed from redis", extra={"task": task})

    async def _restore(self, task: str, definition: TaskDefinition) -> None:
        served = self._store.get(task)
        if served is not None and not serves_definition(served.record, definition):
            self._store.unload(task)  # loaded at start-up before the definition was read
        champion = await self._source.registry_champion(task)
        if champion is None:
            log.info("re-applied task waits for its first model", extra={"task": task})
            return
        if not serves_definition(champion, definition):
            log.warning(
                "re-applied task's definition differs from its champion's; "
                "it waits for a model trained on it",
                extra={"task": task, "version": champion.version},
            )
            return
        if self._store.is_retired(task):  # deleted again meanwhile
            return
        await self._source.recache(champion)
        await self._store.swap_to(task, champion.version, champion.model_sha256)

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        await self._reader.stop()
