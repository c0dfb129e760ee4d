"""An ensemble task through the real loop: trainer -> Kafka registry + Redis -> predictor.

The trainer and the predictor run in-process on a private topic namespace and Redis
prefix, against the real broker and Redis: the trainer learns an ensemble task from
``training.batches``, publishes JSON ensemble versions, caches the champion; the
predictor loads it, serves and explains it, and hot-swaps to the next champion; a
restarted trainer resumes the ensemble where it was.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis.asyncio as aioredis

from flywheel.catalog import apply_tasks
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig
from flywheel.registry import ModelCache
from flywheel.tasks import TaskDefinition
from tests.integration.predictor.conftest import StartService, client_for, wait_for
from tests.integration.trainer.helpers import publish_batches, wait_for_events_trained
from tests.unit.trainer.streams import make_batch, make_task
from trainer.config import Settings
from trainer.ensemble import EnsembleLearner
from trainer.service import TrainerService

pytestmark = pytest.mark.integration

TASK = "test.task"
URL = f"/v1/tasks/{TASK}/predict"


def _ensemble_task() -> TaskDefinition:
    base = make_task(min_events_to_train=100, max_trees=40)
    return TaskDefinition.model_validate(
        {
            **base.model_dump(),
            "ensemble": {
                "combine": "stacked",
                "members": [
                    {"name": "long", "training": {"window_events": 5_000}},
                    {"name": "short", "training": {"window_events": 400, "max_trees": 20}},
                ],
            },
        }
    )


async def test_an_ensemble_task_is_trained_published_and_served(
    kafka_namespace: KafkaConfig,
    redis_config: RedisConfig,
    redis_prefix: str,
    redis_client: aioredis.Redis,
    start_service: StartService,
) -> None:
    await apply_tasks(kafka_namespace, [_ensemble_task()])
    settings = Settings(
        kafka_bootstrap_servers=kafka_namespace.bootstrap_servers,
        topic_prefix=kafka_namespace.topic_prefix,
        redis_url=redis_config.url,
        redis_key_prefix=redis_prefix,
        trainer_port=0,
        startup_timeout_s=20,
    )
    trainer = TrainerService(settings)
    await trainer.start()
    runner = asyncio.create_task(trainer.run())
    rng = np.random.default_rng(5)
    try:
        await publish_batches(kafka_namespace, [make_batch(rng, i, 200) for i in range(3)])
        registry = await wait_for_events_trained(kafka_namespace, {TASK: 600}, timeout_s=30)
        champion = registry.champion(TASK)
        assert champion is not None and champion.ensemble is not None
        assert champion.model_format == "lightgbm-ensemble"
        assert [m.name for m in champion.ensemble.members] == ["long", "short"]
        assert "accuracy" in champion.metrics  # the ensemble's live prequential numbers
        # Durable in Redis like a single model, hash-checked on the way out.
        cached = await ModelCache(redis_client, key_prefix=redis_prefix).load_champion(TASK)
        assert cached == champion

        predictor = await start_service()

        async def serves(version: int) -> bool:
            model = predictor.predictor.store.get(TASK)
            return model is not None and model.version == version

        await wait_for(lambda: serves(champion.version))
        async with client_for(predictor) as client:
            response = await client.post(
                URL,
                params={"explain": "true"},
                json={"features": {"a": 0.5, "b": 0.5, "agent": "x"}},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_version"] == champion.version
            assert body["label"] is True and 0.5 < body["probability"] <= 1
            assert set(body["contributions"]) == {"a", "b", "agent", "bias"}
            p = body["score"]
            assert sum(body["contributions"].values()) == pytest.approx(np.log(p / (1 - p)))
            refused = await client.post(URL, json={"features": {"a": "x", "b": 0.0}})
            assert refused.status_code == 422 and refused.json()["field"] == "features.a"

        # The loop keeps going: more feedback, a newer ensemble, hot-swapped in.
        await publish_batches(kafka_namespace, [make_batch(rng, i, 200) for i in range(3, 5)])
        registry = await wait_for_events_trained(kafka_namespace, {TASK: 1_000}, timeout_s=30)
        newer = registry.champion(TASK)
        assert newer is not None and newer.version > champion.version
        await wait_for(lambda: serves(newer.version))
    finally:
        await trainer.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)

    # A restarted trainer resumes the ensemble from the registry, refills every member's
    # replay window from the learned batches, and counts nothing twice.
    restarted = TrainerService(settings)
    await restarted.start()
    runner = asyncio.create_task(restarted.run())
    try:
        await publish_batches(kafka_namespace, [make_batch(rng, 5, 200)])
        registry = await wait_for_events_trained(kafka_namespace, {TASK: 1_200}, timeout_s=30)
        assert registry.versions(TASK)[-1].events_trained == 1_200
        learner = restarted.learners[TASK]
        assert isinstance(learner, EnsembleLearner) and learner.champion is not None
        assert len(learner.members["long"].window) == 1_200  # 1,000 replayed + the new batch
        assert len(learner.members["short"].window) == 400  # its own bound
    finally:
        await restarted.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
