"""The model registry: every model version and champion change per task, and the Redis cache.

``models.registry`` (compacted) is the source of truth. It holds two kinds of record:

* :class:`~flywheel.events.ModelVersion`, key ``task@vN`` - a trained model (LightGBM
  text, feature schema, category mappings, calibration, metrics, sha256);
* :class:`~flywheel.events.ChampionChange`, key ``task#000000000007`` - a promotion or
  rollback; the champion of a task is the version named by its highest sequence.

A tombstone on ``task@vN`` retires an old version (the trainer keeps the latest few and
every version a recent champion change names); champion changes are never retired.

API (small on purpose; the predictor, trainer and CLI all use it):

* :class:`RegistryView` - pure in-memory state: ``apply(key, value)`` one record, then
  ``tasks()``, ``champion(task)``, ``version(task, n)``, ``versions(task)``,
  ``history(task)``, ``next_version(task)``, ``next_sequence(task)``.
* :class:`ModelRegistry` - a :class:`RegistryView` loaded from Kafka with
  :class:`~flywheel.compacted.CompactedReader`: ``await start(follow=True)``,
  ``await catch_up()`` (when not following), ``await stop()``.
* :func:`registry_record` / :func:`decode_registry_record` - the wire form of a record.
* :func:`publish_registry_records` - write records (and a :class:`ModelPublished`
  announcement) with an ordinary idempotent producer; the trainer writes the same
  records inside its own Kafka transactions.
* :func:`champion_change` - the next promotion/rollback event for a task;
  :func:`announcement` - its :class:`ModelPublished`;
  :func:`make_registry_producer` - a producer sized for 16 MiB gzip'd versions.
* :class:`ModelCache` - the Redis layout, all keys under ``RedisConfig.key_prefix``::

      {prefix}model:{<task>}:{version}   hash  text = LightGBM text, meta = ModelVersion JSON
                                                (every field but model_text)
      {prefix}champion:{<task>}          string: the champion's version number

  (the braces around the task are literal: a Redis Cluster hash tag).

  ``load`` re-checks the sha256 and raises :class:`ModelIntegrityError` on a mismatch.
* :func:`rebuild_cache` - write every task's champion from the registry into Redis
  (used at start-up and after Redis was flushed), except those of ``skip`` (the
  trainer passes the catalog's deleted tasks).
* :func:`reconcile_cache` - the same for a *partial* loss (one cluster shard restarted
  empty, eviction): check each champion's keys, restore only the missing ones.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Literal

import orjson
from aiokafka import AIOKafkaProducer

from flywheel import serde
from flywheel.compacted import CompactedReader
from flywheel.errors import ModelIntegrityError, SerdeError
from flywheel.events import ChampionChange, ModelPublished, ModelVersion, utc_now
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.redis import RedisClient
from flywheel.topics import MODELS_PUBLISHED, MODELS_REGISTRY

__all__ = [
    "MAX_REGISTRY_RECORD_BYTES",
    "ModelCache",
    "ModelRegistry",
    "RegistryRecord",
    "RegistryView",
    "TaskModels",
    "announcement",
    "champion_change",
    "decode_registry_record",
    "make_registry_producer",
    "publish_registry_records",
    "rebuild_cache",
    "reconcile_cache",
    "registry_record",
]

log = logging.getLogger(__name__)

# models.registry allows 16 MiB messages; a version is checked against this on decode.
MAX_REGISTRY_RECORD_BYTES = 16 * 1024 * 1024
# Demoted models stay in Redis a while so a predictor mid-swap can still load them.
DEMOTED_MODEL_TTL_S = 3600

RegistryRecord = ModelVersion | ChampionChange


def registry_record(event: RegistryRecord) -> tuple[bytes, bytes]:
    """``(key, value)`` of ``event`` as stored in ``models.registry``."""
    return event.registry_key().encode("utf-8"), serde.encode(event)


def decode_registry_record(value: bytes) -> RegistryRecord:
    """A registry value -> its event; :class:`SerdeError` if it is neither kind."""
    try:
        kind = orjson.loads(value).get("kind")
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise SerdeError(
            f"registry record is not a JSON object: {exc}", reason="broken_json"
        ) from exc
    if kind == "version":
        return serde.decode(ModelVersion, value, max_bytes=MAX_REGISTRY_RECORD_BYTES)
    if kind in ("promotion", "rollback"):
        return serde.decode(ChampionChange, value, max_bytes=MAX_REGISTRY_RECORD_BYTES)
    raise SerdeError(f"kind: unknown registry record kind {kind!r:.40}", reason="invalid_field")


@dataclass(slots=True)
class TaskModels:
    """Everything the registry knows about one task."""

    task: str
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    changes: dict[int, ChampionChange] = field(default_factory=dict)
    # Highest version number ever seen, including retired (tombstoned) ones: never reused.
    max_version: int = 0

    @property
    def champion_version(self) -> int | None:
        if not self.changes:
            return None
        return self.changes[max(self.changes)].version

    def history(self) -> list[ChampionChange]:
        return [self.changes[s] for s in sorted(self.changes)]


class RegistryView:
    """The registry in memory. Feed it records with :meth:`apply` (idempotent)."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskModels] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one ``models.registry`` record; ``value`` None is a tombstone."""
        if key is None:
            return
        text = key.decode("utf-8")
        if value is None:
            task, sep, version = text.rpartition("@v")
            if sep and version.isdigit() and task in self._tasks:
                self._tasks[task].versions.pop(int(version), None)
            return
        self.add(decode_registry_record(value))

    def add(self, event: RegistryRecord) -> None:
        models = self._tasks.setdefault(event.task, TaskModels(event.task))
        if isinstance(event, ModelVersion):
            models.versions[event.version] = event
            models.max_version = max(models.max_version, event.version)
        else:
            models.changes[event.sequence] = event
            models.max_version = max(models.max_version, event.version)

    def tasks(self) -> list[str]:
        return sorted(self._tasks)

    def task(self, task: str) -> TaskModels | None:
        return self._tasks.get(task)

    def versions(self, task: str) -> list[ModelVersion]:
        models = self._tasks.get(task)
        return [] if models is None else [models.versions[v] for v in sorted(models.versions)]

    def version(self, task: str, version: int) -> ModelVersion | None:
        models = self._tasks.get(task)
        return None if models is None else models.versions.get(version)

    def champion_version(self, task: str) -> int | None:
        models = self._tasks.get(task)
        return None if models is None else models.champion_version

    def champion(self, task: str) -> ModelVersion | None:
        """The current champion's :class:`ModelVersion` (None if none or retired)."""
        number = self.champion_version(task)
        return None if number is None else self.version(task, number)

    def history(self, task: str) -> list[ChampionChange]:
        models = self._tasks.get(task)
        return [] if models is None else models.history()

    def next_version(self, task: str) -> int:
        models = self._tasks.get(task)
        return 1 if models is None else models.max_version + 1

    def next_sequence(self, task: str) -> int:
        models = self._tasks.get(task)
        return 1 if models is None or not models.changes else max(models.changes) + 1


class ModelRegistry(RegistryView):
    """A :class:`RegistryView` of the ``models.registry`` topic."""

    def __init__(self, config: KafkaConfig) -> None:
        super().__init__()
        self._reader = CompactedReader(config, config.topic(MODELS_REGISTRY), self.apply)

    async def start(self, *, follow: bool = True) -> None:
        """Load the whole topic; with ``follow`` keep applying new records in the background."""
        count = await self._reader.load()
        log.info("model registry loaded", extra={"records": count, "tasks": len(self.tasks())})
        if follow:
            self._reader.follow()

    async def catch_up(self) -> int:
        """Apply every record written since :meth:`start` (only when not following)."""
        return await self._reader.catch_up()

    async def stop(self) -> None:
        await self._reader.stop()


def champion_change(
    view: RegistryView,
    task: str,
    version: int,
    *,
    kind: Literal["promotion", "rollback"],
    reason: str,
    metrics: dict[str, float] | None = None,
) -> ChampionChange:
    """The next champion change of ``task`` (sequence = last + 1)."""
    return ChampionChange(
        kind=kind,
        task=task,
        sequence=view.next_sequence(task),
        version=version,
        previous_version=view.champion_version(task),
        reason=reason[:1_000],
        metrics=metrics or {},
    )


def make_registry_producer(
    config: KafkaConfig, *, transactional_id: str | None = None
) -> AIOKafkaProducer:
    """A producer sized for model versions (gzip: LightGBM text compresses ~4x)."""
    return make_producer(
        config,
        transactional_id=transactional_id,
        compression_type="gzip",
        max_request_size=MAX_REGISTRY_RECORD_BYTES,
    )


async def publish_registry_records(
    config: KafkaConfig,
    records: list[RegistryRecord],
    *,
    announce: ModelPublished | None = None,
    producer: AIOKafkaProducer | None = None,
) -> None:
    """Write ``records`` to ``models.registry`` (and ``announce`` to ``models.published``).

    Uses ``producer`` if given (started, not transactional), else a short-lived one.
    """
    own = producer is None
    active = make_registry_producer(config) if producer is None else producer
    if own:
        await active.start()
    try:
        for record in records:
            key, value = registry_record(record)
            await active.send_and_wait(config.topic(MODELS_REGISTRY), value, key=key)
        if announce is not None:
            await active.send_and_wait(
                config.topic(MODELS_PUBLISHED), serde.encode(announce), key=announce.task.encode()
            )
    finally:
        if own:
            await active.stop()


def announcement(
    version: ModelVersion, kind: Literal["promotion", "rollback"] = "promotion"
) -> ModelPublished:
    """The ``models.published`` event saying ``version`` is now its task's champion."""
    return ModelPublished(
        task=version.task,
        version=version.version,
        model_sha256=version.model_sha256,
        kind=kind,
        published_at=utc_now(),
    )


class ModelCache:
    """Champion models in Redis (a cache: :func:`rebuild_cache` restores it from Kafka).

    The task is a hash tag (``{prefix}model:{<task>}:{version}``,
    ``{prefix}champion:{<task>}``): on a Redis Cluster all of a task's keys share one
    slot, so :meth:`set_champion`'s MULTI/EXEC and :meth:`forget`'s DEL stay on one
    node, while different tasks still spread over the nodes. Keys of the layout before
    the tags (``{prefix}champion:<task>``) are never read again; they stay until
    Redis is flushed (demoted models expire on their own).
    """

    def __init__(self, client: RedisClient, *, key_prefix: str = "flywheel:") -> None:
        self._redis = client
        self._prefix = key_prefix

    def model_key(self, task: str, version: int) -> str:
        return f"{self._prefix}model:{{{task}}}:{version}"

    def champion_key(self, task: str) -> str:
        return f"{self._prefix}champion:{{{task}}}"

    def _champion_pattern(self) -> str:
        # Task names hold no glob characters (TASK_NAME_PATTERN); braces are literal.
        return self.champion_key("*")

    async def champions(self) -> dict[str, int]:
        """Every task's champion version: SCAN (every primary, on a cluster), then the
        GETs in one non-transactional pipeline, which a cluster client splits by node
        (an MGET across tasks would span slots)."""
        keys = [k async for k in self._redis.scan_iter(match=self._champion_pattern())]
        if not keys:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            values = await pipe.execute()
        skip = len(self.champion_key(""))  # "{prefix}champion:{" + "}"
        return {
            key.decode()[skip - 1 : -1]: int(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    async def has_champions(self) -> bool:
        """Whether Redis holds any champion at all (False: it was flushed or is new)."""
        async for _ in self._redis.scan_iter(match=self._champion_pattern(), count=100):
            return True
        return False

    async def forget(self, task: str) -> None:
        """Delete the task's champion and every cached version (one slot: one DEL)."""
        versions = self._prefix + f"model:{{{task}}}:*"
        keys = [self.champion_key(task)]
        keys += [k async for k in self._redis.scan_iter(match=versions)]
        await self._redis.delete(*keys)

    async def put(self, version: ModelVersion) -> None:
        """Store a model version (text + metadata), without changing the champion."""
        meta = orjson.dumps(version.model_dump(mode="json", exclude={"model_text"}))
        await self._redis.hset(
            self.model_key(version.task, version.version),
            mapping={"text": version.model_text.encode("utf-8"), "meta": meta},
        )

    async def set_champion(self, version: ModelVersion) -> None:
        """Store ``version`` and point the task's champion at it; the old one expires later."""
        previous = await self.champion_version(version.task)
        await self.put(version)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.champion_key(version.task), str(version.version))
            pipe.persist(self.model_key(version.task, version.version))
            if previous is not None and previous != version.version:
                pipe.expire(self.model_key(version.task, previous), DEMOTED_MODEL_TTL_S)
            await pipe.execute()

    async def missing(self, champions: list[ModelVersion]) -> list[ModelVersion]:
        """The champions whose keys are not (all) in Redis: no champion pointer, or the
        pointer names this version but its hash is gone or holds another model.

        One non-transactional pipeline of per-key commands (GET, HGET), which a cluster
        client splits by node. A pointer naming *another* version is not reported: it
        may be a champion change newer than the caller's registry view.
        """
        if not champions:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for version in champions:
                pipe.get(self.champion_key(version.task))
                pipe.hget(self.model_key(version.task, version.version), "meta")
            values = await pipe.execute()
        gaps = []
        for i, version in enumerate(champions):
            pointer, meta = values[2 * i], values[2 * i + 1]
            lost_pointer = pointer is None
            lost_model = (
                not lost_pointer
                and int(pointer) == version.version
                and (meta is None or orjson.loads(meta).get("model_sha256") != version.model_sha256)
            )
            if lost_pointer or lost_model:
                gaps.append(version)
        return gaps

    async def restore(self, version: ModelVersion) -> bool:
        """Write back a champion :meth:`missing` reported; True if it is the champion now.

        The pointer is only created if absent (SET NX): a champion change written since
        the check wins over this repair, whose hash then expires like a demoted one.
        """
        await self.put(version)
        key = self.model_key(version.task, version.version)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.champion_key(version.task), str(version.version), nx=True)
            pipe.get(self.champion_key(version.task))
            _, pointer = await pipe.execute()
        if pointer is not None and int(pointer) == version.version:
            await self._redis.persist(key)
            return True
        await self._redis.expire(key, DEMOTED_MODEL_TTL_S)
        return False

    async def champion_version(self, task: str) -> int | None:
        raw = await self._redis.get(self.champion_key(task))
        return None if raw is None else int(raw)

    async def load(self, task: str, version: int) -> ModelVersion | None:
        """The cached version, hash-checked; None if not cached.

        Raises :class:`ModelIntegrityError` if the text does not hash to the recorded
        sha256 (a corrupted or tampered cache entry: reload it from the registry).
        """
        fields = await self._redis.hgetall(self.model_key(task, version))
        if not fields or b"text" not in fields or b"meta" not in fields:
            return None
        raw_text = fields[b"text"]
        text = raw_text.decode("utf-8") if isinstance(raw_text, bytes) else str(raw_text)
        meta = orjson.loads(fields[b"meta"])
        actual = ModelVersion.hash_text(text)
        if actual != meta.get("model_sha256"):
            raise ModelIntegrityError(
                f"{task}@v{version}: cached model text hashes to {actual[:12]}..., "
                f"its metadata says {str(meta.get('model_sha256'))[:12]}..."
            )
        return ModelVersion.model_validate({**meta, "model_text": text})

    async def load_champion(self, task: str) -> ModelVersion | None:
        number = await self.champion_version(task)
        return None if number is None else await self.load(task, number)


async def rebuild_cache(
    view: RegistryView, cache: ModelCache, *, skip: Container[str] = frozenset()
) -> int:
    """Write every task's champion from ``view`` into ``cache``, but those of tasks in
    ``skip`` (deleted ones: writing them back would undo the predictor's cleanup);
    return how many were written."""
    written = skipped = 0
    for task in view.tasks():
        champion = view.champion(task)
        if champion is None:
            continue
        if task in skip:
            skipped += 1
            continue
        await cache.set_champion(champion)
        written += 1
    log.info(
        "model cache rebuilt from the registry", extra={"champions": written, "skipped": skipped}
    )
    return written


async def reconcile_cache(
    view: RegistryView, cache: ModelCache, *, skip: Container[str] = frozenset()
) -> list[ModelVersion]:
    """Restore the champions of ``view`` whose Redis keys were lost (all but those of
    ``skip``: deleted tasks stay deleted); return the ones restored."""
    champions = [
        champion
        for task in view.tasks()
        if task not in skip and (champion := view.champion(task)) is not None
    ]
    restored = []
    for version in await cache.missing(champions):
        if await cache.restore(version):
            restored.append(version)
    return restored
