"""ensure_topics against the real broker: creates what is missing, says what was refused."""

from __future__ import annotations

import pytest

from flywheel.errors import ConfigError
from flywheel.kafka import KafkaConfig, ensure_topics
from flywheel.topics import ALL_TOPICS, TopicSpec


async def test_existing_topics_are_left_alone(kafka: KafkaConfig) -> None:
    assert await ensure_topics(kafka, ALL_TOPICS) == []


async def test_a_refused_topic_is_an_error_naming_it(kafka: KafkaConfig) -> None:
    bogus = TopicSpec("bogus.policy", 1, extra_config={"cleanup.policy": "sometimes"})
    fine = TopicSpec("fine.extra", 1)
    with pytest.raises(ConfigError, match=r"bogus\.policy: Invalid value sometimes"):
        await ensure_topics(kafka, [bogus, fine])
    # The broker creates what it accepts; a second call only reports the refusal again.
    with pytest.raises(ConfigError, match=r"bogus\.policy"):
        await ensure_topics(kafka, [bogus, fine])
