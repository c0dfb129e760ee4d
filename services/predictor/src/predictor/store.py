"""The in-process champions, hot-swapped on ``models.published``.

A request reads ``store.get(task)`` once and uses that :class:`ServingModel` to the
end, so a swap never changes a model under a request in flight. A new version is
fetched, hash-checked, loaded and warmed in a worker thread (LightGBM releases the
GIL), and only then installed with one dict assignment: requests neither fail nor
wait during a swap.

A deleted task is *retired* (:meth:`ModelStore.retire`, driven by
:class:`predictor.task_watch.TaskWatch`): its model is dropped and no version of it
is installed again until the task is re-applied (:meth:`ModelStore.reinstate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer

from flywheel import serde
from flywheel.errors import FlywheelError
from flywheel.events import ModelPublished
from flywheel.kafka import KafkaConfig, make_consumer
from flywheel.topics import MODELS_PUBLISHED
from predictor.metrics import PredictorMetrics
from predictor.partitions import assign_all_partitions
from predictor.scoring import ServingModel
from predictor.sources import ModelSource

__all__ = ["ModelStore", "PublishedFollower"]

log = logging.getLogger(__name__)


class ModelStore:
    def __init__(self, source: ModelSource, metrics: PredictorMetrics) -> None:
        self._source = source
        self._metrics = metrics
        self._models: dict[str, ServingModel] = {}
        # One swap at a time per task, so an older announcement never wins a race.
        self._locks: dict[str, asyncio.Lock] = {}
        # Tasks whose deletion (a tombstone on the tasks topic) was seen: never served.
        self._retired: set[str] = set()

    def get(self, task: str) -> ServingModel | None:
        return self._models.get(task)

    def is_retired(self, task: str) -> bool:
        return task in self._retired

    def retired(self) -> list[str]:
        return sorted(self._retired)

    def retire(self, task: str) -> bool:
        """The task was deleted: stop serving it. True if a model was being served."""
        self._retired.add(task)
        return self.unload(task)

    def reinstate(self, task: str) -> None:
        """The task was applied again: its models may be installed again."""
        self._retired.discard(task)

    def unload(self, task: str) -> bool:
        """Stop serving ``task``'s model (if any); True if one was served."""
        if self._models.pop(task, None) is None:
            return False
        with contextlib.suppress(KeyError):
            self._metrics.model_version.remove(task)
        return True

    def tasks(self) -> list[str]:
        return sorted(self._models)

    def install(self, model: ServingModel) -> None:
        self._models[model.task] = model
        self._metrics.model_version.labels(model.task).set(model.version)

    async def load_champions(self) -> int:
        """Load every champion the source knows; a broken one is logged, not fatal."""
        loaded = 0
        for champion in await self._source.champions(skip=self._retired):
            if champion.task in self._retired:
                continue
            if await self.swap_to(champion.task, champion.version):
                loaded += 1
        return loaded

    async def swap_to(self, task: str, version: int, sha256: str | None = None) -> bool:
        """Make ``version`` the served model of ``task``; False if it could not be loaded."""
        lock = self._locks.setdefault(task, asyncio.Lock())
        async with lock:
            if task in self._retired:
                log.info(
                    "model not loaded: its task was deleted",
                    extra={"task": task, "version": version},
                )
                return False
            current = self._models.get(task)
            if (
                current is not None
                and current.version == version
                and (sha256 is None or current.record.model_sha256 == sha256)
            ):
                return True
            try:
                record = await self._source.fetch(task, version)
                if record is None:
                    raise FlywheelError(f"{task} v{version} is in neither Redis nor the registry")
                if sha256 is not None and record.model_sha256 != sha256:
                    raise FlywheelError(
                        f"{task} v{version}: announced sha256 {sha256[:12]}… but the stored "
                        f"model is {record.model_sha256[:12]}…"
                    )
                model = await asyncio.to_thread(ServingModel.load, record)
            except (FlywheelError, ValueError, OSError) as exc:
                self._metrics.model_load_failures.labels(task).inc()
                log.error(
                    "model not loaded; still serving the previous version",
                    extra={"task": task, "version": version, "error": str(exc)},
                )
                return False
            if task in self._retired:  # deleted while this version was loading
                return False
            self.install(model)
            self._metrics.model_swaps.labels(task).inc()
            log.info("model swapped in", extra={"task": task, "version": version})
            return True


class PublishedFollower:
    """Follows ``models.published`` (every replica sees every announcement: no group)."""

    def __init__(self, config: KafkaConfig, store: ModelStore) -> None:
        self._config = config
        self._store = store
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def mark(self) -> None:
        """Pin the current end offsets: call before the initial load so no swap is missed."""
        consumer = make_consumer(self._config, group_id=None, auto_offset_reset="latest")
        await consumer.start()
        try:
            tps = await assign_all_partitions(consumer, self._config.topic(MODELS_PUBLISHED))
            ends = await consumer.end_offsets(tps)
        except BaseException:
            await consumer.stop()
            raise
        for tp in tps:
            consumer.seek(tp, ends[tp])
        self._consumer = consumer

    def follow(self) -> None:
        if self._consumer is None:
            raise RuntimeError("mark() first")
        self._task = asyncio.create_task(self._run(self._consumer), name="models.published")

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                await self._poll(consumer)
            except Exception:
                # Keep following: a missed announcement would pin an old champion.
                log.exception("models.published follower error; retrying")
                await asyncio.sleep(1.0)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=1_000)
        for records in batches.values():
            for record in records:
                if record.value is None:
                    continue
                try:
                    event = serde.decode(ModelPublished, record.value)
                except FlywheelError as exc:
                    log.error("unreadable models.published record skipped: %s", exc)
                    continue
                await self._store.swap_to(event.task, event.version, event.model_sha256)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
