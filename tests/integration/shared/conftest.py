"""Fixtures for the shared library's integration tests: a private topic namespace per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from flywheel.kafka import KafkaConfig, ensure_topics, wait_for_kafka


@pytest.fixture
async def kafka() -> AsyncIterator[KafkaConfig]:
    config = KafkaConfig(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        client_id="flywheel-tests",
        topic_prefix=f"t{uuid4().hex[:10]}.",
    )
    await wait_for_kafka(config, timeout_s=30)
    await ensure_topics(config)
    yield config
