from __future__ import annotations

import pytest

from flywheel.kafka import KafkaConfig
from flywheel.topics import ALL_TOPICS, FEEDBACK_EVENTS, MODELS_REGISTRY, TASKS, topic_by_name


def test_topic_names_are_unique() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))


def test_sources_of_truth_are_compacted_and_kept() -> None:
    for spec in (TASKS, MODELS_REGISTRY):
        cfg = spec.broker_config()
        assert cfg["cleanup.policy"] == "compact"
        assert "retention.ms" not in cfg


def test_streams_have_bounded_retention() -> None:
    cfg = FEEDBACK_EVENTS.broker_config()
    assert cfg["cleanup.policy"] == "delete"
    assert int(cfg["retention.ms"]) > 0


def test_prefix_namespaces_every_topic() -> None:
    config = KafkaConfig(topic_prefix="staging.")
    assert config.topic(FEEDBACK_EVENTS) == "staging.feedback.events"
    assert KafkaConfig().topic(FEEDBACK_EVENTS) == "feedback.events"


def test_lookup_by_name() -> None:
    assert topic_by_name("tasks") is TASKS
    with pytest.raises(KeyError):
        topic_by_name("nope")


def test_groups_and_transactional_ids_follow_the_prefix() -> None:
    # Kafka's group and transactional-id namespaces are cluster-wide, not per topic.
    assert KafkaConfig(topic_prefix="staging.").scoped("flywheel-trainer") == (
        "staging.flywheel-trainer"
    )


def test_no_prefix_keeps_the_names_a_default_deployment_already_has() -> None:
    assert KafkaConfig().scoped("flywheel-trainer") == "flywheel-trainer"
    assert KafkaConfig().unscoped("flywheel-trainer") == "flywheel-trainer"


def test_unscoped_strips_only_this_deployments_prefix() -> None:
    staging = KafkaConfig(topic_prefix="staging.")
    assert staging.unscoped(staging.scoped("flywheel-alerter")) == "flywheel-alerter"
    assert staging.unscoped("prod.flywheel-alerter") == "prod.flywheel-alerter"
    assert staging.unscoped("my-audit-consumer") == "my-audit-consumer"
