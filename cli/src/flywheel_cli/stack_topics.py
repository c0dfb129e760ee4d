"""Creating every Flywheel topic on the stack's cluster, and checking they exist."""

from __future__ import annotations

import asyncio
import time

from flywheel.errors import DependencyUnavailable, FlywheelError
from flywheel_cli.config import StackConfig

__all__ = ["create_topics"]


def create_topics(config: StackConfig, deadline: float) -> list[str]:
    """Create any missing topic from ``flywheel.topics.ALL_TOPICS``; return the new names.

    Retries until ``deadline`` (``time.monotonic()``): a broker that just answered
    metadata may still refuse a create while its controller settles.
    """
    from aiokafka.errors import KafkaError

    from flywheel.kafka import KafkaConfig, ensure_topics
    from flywheel.topics import ALL_TOPICS

    kafka = KafkaConfig(
        bootstrap_servers=config.kafka_bootstrap,
        client_id="flywheel-stack",
        replication_factor=config.replication_factor,
        topic_prefix=config.topic_prefix,
    )
    wanted = {kafka.topic(spec) for spec in ALL_TOPICS}
    last: object = None
    while True:
        try:
            created = asyncio.run(ensure_topics(kafka, ALL_TOPICS))
            # create_topics reports per-topic failures in its response rather than
            # raising, so check the broker's own list before calling it done.
            missing = wanted - set(asyncio.run(_list_topics(kafka.bootstrap_servers)))
            if not missing:
                return created
            last = f"still missing after create: {sorted(missing)}"
        except (FlywheelError, KafkaError, OSError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise DependencyUnavailable(f"topics not created on {kafka.bootstrap_servers}: {last}")
        time.sleep(0.5)


async def _list_topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="flywheel-stack")
    try:
        await admin.start()
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()
