"""Helpers for the trainer's integration tests: publish batches, read registry/announcements."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from flywheel import serde
from flywheel.events import ModelPublished, TrainingBatch
from flywheel.kafka import KafkaConfig, make_consumer, make_producer
from flywheel.redis import RedisConfig
from flywheel.registry import ModelRegistry
from flywheel.topics import MODELS_PUBLISHED, TRAINING_BATCHES
from trainer.config import Settings


def trainer_settings(kafka: KafkaConfig, redis_config: RedisConfig, **overrides: Any) -> Settings:
    """An in-process trainer's settings: the test's topics and Redis prefix, any port."""
    return Settings(
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=kafka.topic_prefix,
        redis_url=redis_config.url,
        redis_key_prefix=redis_config.key_prefix,
        trainer_port=0,
        startup_timeout_s=20,
        heartbeat_interval_s=0.5,
        **overrides,
    )


async def publish_batches(kafka: KafkaConfig, batches: list[TrainingBatch]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for batch in batches:
            await producer.send_and_wait(
                kafka.topic(TRAINING_BATCHES), serde.encode(batch), key=batch.task.encode()
            )
    finally:
        await producer.stop()


async def registry_snapshot(kafka: KafkaConfig) -> ModelRegistry:
    registry = ModelRegistry(kafka)
    await registry.start(follow=False)
    await registry.stop()
    return registry


async def wait_for_events_trained(
    kafka: KafkaConfig, expected: dict[str, int], *, timeout_s: float = 60
) -> ModelRegistry:
    """Poll the registry until every task's newest version has learned ``expected`` events."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        registry = await registry_snapshot(kafka)
        trained = {
            task: (registry.versions(task)[-1].events_trained if registry.versions(task) else 0)
            for task in expected
        }
        if trained == expected or loop.time() > deadline:
            return registry
        await asyncio.sleep(0.5)


async def read_announcements(kafka: KafkaConfig) -> list[ModelPublished]:
    consumer = make_consumer(kafka, group_id=None)
    await consumer.start()
    try:
        topic = kafka.topic(MODELS_PUBLISHED)
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ModelPublished] = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [serde.decode(ModelPublished, r.value) for r in records if r.value]
        return out
    finally:
        await consumer.stop()
