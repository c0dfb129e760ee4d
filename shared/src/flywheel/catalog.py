"""The task catalog: every applied :class:`TaskDefinition`, from the compacted ``tasks`` topic."""

from __future__ import annotations

import logging

from flywheel import serde
from flywheel.compacted import CompactedReader
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.tasks import TaskDefinition
from flywheel.topics import TASKS

__all__ = ["MAX_DEFINITION_BYTES", "TaskCatalog", "apply_tasks", "delete_task"]

log = logging.getLogger(__name__)

# Largest task definition record read from the topic.
MAX_DEFINITION_BYTES = 1_000_000


class TaskCatalog:
    """An in-memory view of the ``tasks`` topic, optionally kept current in the background.

    A deleted task (its latest record is a tombstone, ``flywheel tasks delete``) is not
    in the catalog, but :meth:`is_deleted` tells it apart from a task never applied:
    services that act on models already in the registry (the trainer's Redis cache)
    skip deleted tasks, as the predictor does. Once Kafka compacts the tombstone away
    (``delete.retention.ms``) the task is merely unknown.
    """

    def __init__(self, config: KafkaConfig) -> None:
        self._tasks: dict[str, TaskDefinition] = {}
        self._deleted: set[str] = set()
        self._reader = CompactedReader(config, config.topic(TASKS), self.apply)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one ``tasks`` record; ``value`` None is a tombstone."""
        if key is None:
            return
        name = key.decode("utf-8")
        if value is None:
            self._tasks.pop(name, None)
            self._deleted.add(name)
            return
        self._tasks[name] = serde.decode(TaskDefinition, value, max_bytes=MAX_DEFINITION_BYTES)
        self._deleted.discard(name)

    async def start(self, *, follow: bool = True) -> None:
        count = await self._reader.load()
        log.info("task catalog loaded", extra={"records": count, "tasks": len(self._tasks)})
        if follow:
            self._reader.follow()

    async def stop(self) -> None:
        await self._reader.stop()

    def get(self, name: str) -> TaskDefinition | None:
        return self._tasks.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def all(self) -> list[TaskDefinition]:
        return sorted(self._tasks.values(), key=lambda t: t.name)

    def is_deleted(self, name: str) -> bool:
        """Whether ``name`` was deleted and not applied again since."""
        return name in self._deleted

    def deleted(self) -> frozenset[str]:
        """Every task deleted and not applied again since."""
        return frozenset(self._deleted)

    def put(self, task: TaskDefinition) -> None:
        """Add a task locally (tests and the CLI's dry runs); production reads the topic."""
        self._tasks[task.name] = task
        self._deleted.discard(task.name)


async def apply_tasks(config: KafkaConfig, tasks: list[TaskDefinition]) -> None:
    """Store ``tasks`` in the ``tasks`` topic (latest definition per name wins)."""
    producer = make_producer(config)
    await producer.start()
    try:
        for task in tasks:
            await producer.send_and_wait(
                config.topic(TASKS), serde.encode(task), key=task.name.encode()
            )
    finally:
        await producer.stop()


async def delete_task(config: KafkaConfig, name: str) -> None:
    """Write a tombstone: the task disappears from every catalog."""
    producer = make_producer(config)
    await producer.start()
    try:
        await producer.send_and_wait(config.topic(TASKS), None, key=name.encode())
    finally:
        await producer.stop()
