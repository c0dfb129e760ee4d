"""The shared library's integration tests use the common private namespace."""

from __future__ import annotations

import pytest

from flywheel.kafka import KafkaConfig


@pytest.fixture
def kafka(kafka_namespace: KafkaConfig) -> KafkaConfig:
    """All Flywheel topics under a private prefix, deleted after the test."""
    return kafka_namespace
