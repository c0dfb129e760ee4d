"""aiokafka helpers with Flywheel's delivery guarantees baked in.

* Producers are idempotent with ``acks=all``: a retried send never duplicates and a
  sent record is on every in-sync replica before ``send`` returns.
* Consumers never auto-commit: callers commit offsets only after their work is
  durable (see :func:`commit_processed`).
* Nothing here connects in a constructor; ``start()`` (or the helpers that await it)
  does, with a bounded wait.

The library never reads the environment: pass a :class:`KafkaConfig`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from flywheel.errors import ConfigError, DependencyUnavailable
from flywheel.topics import ALL_TOPICS, TopicSpec

__all__ = [
    "KafkaConfig",
    "commit_processed",
    "ensure_topics",
    "make_consumer",
    "make_producer",
    "wait_for_kafka",
]

log = logging.getLogger(__name__)

# Kafka's default max.message.bytes is 1 MiB; batches are split to stay under this.
MAX_MESSAGE_BYTES = 1_000_000
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """How to reach the cluster. Frozen so it can be shared safely across tasks."""

    bootstrap_servers: str = "127.0.0.1:19092"
    client_id: str = "flywheel"
    replication_factor: int = 1
    request_timeout_ms: int = 30_000
    # Prepended to every topic name: one cluster can host several isolated Flywheel
    # deployments (staging beside prod, or one namespace per integration test).
    topic_prefix: str = ""

    def topic(self, spec: TopicSpec) -> str:
        """The broker-side name of ``spec`` in this deployment."""
        return self.topic_prefix + spec.name

    def scoped(self, name: str) -> str:
        """A consumer group id or transactional id as this deployment uses it.

        Kafka keeps group ids and transactional ids in cluster-wide namespaces of
        their own, not per topic, so prefixing the topics alone does not isolate two
        deployments: sharing a group makes them rebalance each other (and split the
        partitions of unrelated topics between unrelated processes), and sharing a
        transactional id makes each one's producer fence the other's. Every group id
        and transactional id a Flywheel service builds goes through here, so they
        follow the topic prefix like the topics do.

        With no prefix the name is unchanged: a default deployment keeps the groups
        (and so the committed offsets) and transactional ids it had before.
        """
        return self.topic_prefix + name

    def unscoped(self, name: str) -> str:
        """``name`` without this deployment's prefix (the inverse of :meth:`scoped`),
        for labels that should read the same in every deployment."""
        return name.removeprefix(self.topic_prefix)


def make_producer(
    config: KafkaConfig,
    *,
    transactional_id: str | None = None,
    linger_ms: int = 5,
    compression_type: str | None = None,
    max_request_size: int = MAX_MESSAGE_BYTES + 48_576,
) -> AIOKafkaProducer:
    """An idempotent, acks=all producer (transactional when ``transactional_id`` is set).

    Not started: call ``await producer.start()``.
    """
    return AIOKafkaProducer(
        bootstrap_servers=config.bootstrap_servers,
        client_id=config.client_id,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=linger_ms,
        compression_type=compression_type,
        max_request_size=max_request_size,
        request_timeout_ms=config.request_timeout_ms,
    )


def make_consumer(
    config: KafkaConfig,
    *topics: str,
    group_id: str | None,
    auto_offset_reset: str = "earliest",
    read_committed: bool = True,
    max_poll_records: int | None = None,
) -> AIOKafkaConsumer:
    """A consumer that never auto-commits; commit with :func:`commit_processed`.

    ``read_committed`` (default) hides records of aborted transactions, which is what
    every Flywheel consumer downstream of a transactional producer needs.
    """
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=config.bootstrap_servers,
        client_id=config.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        max_poll_records=max_poll_records,
        request_timeout_ms=config.request_timeout_ms,
    )


async def commit_processed(
    consumer: AIOKafkaConsumer, processed: dict[TopicPartition, int]
) -> None:
    """Commit, per partition, the offset *after* the last record whose work is durable."""
    if processed:
        await consumer.commit({tp: offset + 1 for tp, offset in processed.items()})


async def wait_for_kafka(config: KafkaConfig, *, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request; raise after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.1
    last_error: Exception | None = None
    while loop.time() < deadline:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=config.bootstrap_servers, client_id=config.client_id
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
        finally:
            await admin.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise DependencyUnavailable(
        f"Kafka at {config.bootstrap_servers} did not answer within {timeout_s:.0f}s: {last_error}"
    )


async def ensure_topics(config: KafkaConfig, topics: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create any missing topic; return the names created. Existing topics are left alone."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers, client_id=config.client_id
    )
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise DependencyUnavailable(f"Kafka at {config.bootstrap_servers}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topics if config.topic(spec) not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                config.topic(spec),
                spec.partitions,
                config.replication_factor,
                topic_configs=spec.broker_config(),
            )
            for spec in missing
        ]
        response = await admin.create_topics(new)
        # aiokafka reports per-topic failures in the response instead of raising.
        created: list[str] = []
        refused: list[str] = []
        for name, code, message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code == _TOPIC_ALREADY_EXISTS:
                # Another process raced us to it; the topic exists, which is all we need.
                log.info("topic created concurrently by another process", extra={"topic": name})
            else:
                refused.append(f"{name}: {message} (error {code})")
        if refused:
            raise ConfigError("the broker refused to create topics: " + "; ".join(refused))
        return created
    finally:
        await admin.close()
