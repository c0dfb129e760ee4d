"""StackConfig: ports, folders and external endpoints come from an explicit mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel_cli.config import StackConfig, find_repo_root

REPO = Path(__file__).resolve().parents[3]


def test_defaults_put_state_in_the_repo_and_use_the_documented_ports(tmp_path: Path) -> None:
    config = StackConfig.from_env({}, cwd=tmp_path)
    assert config.repo_root == REPO
    assert config.state_dir == REPO / ".flywheel"
    assert config.kafka_lib_dir == REPO / ".flywheel/kafka/lib"
    assert (config.kafka_port, config.controller_port, config.redis_port) == (19092, 19093, 16379)
    assert config.kafka_bootstrap == "127.0.0.1:19092"
    assert config.redis_url == "redis://127.0.0.1:16379/0"
    assert config.external_kafka is None and config.external_redis is None
    assert config.kafka_heap_mb <= 512


def test_environment_moves_ports_and_state(tmp_path: Path) -> None:
    env = {
        "FLYWHEEL_STATE_DIR": str(tmp_path / "state"),
        "FLYWHEEL_KAFKA_PORT": "29092",
        "FLYWHEEL_KAFKA_CONTROLLER_PORT": "29093",
        "FLYWHEEL_REDIS_PORT": "26379",
        "FLYWHEEL_PREDICTOR_PORT": "28080",
        "FLYWHEEL_INGEST_PORT": "28081",
        "FLYWHEEL_TOPIC_PREFIX": "staging.",
    }
    config = StackConfig.from_env(env, cwd=tmp_path)
    assert config.state_dir == tmp_path / "state"
    assert config.kafka_lib_dir == REPO / ".flywheel/kafka/lib", "jar cache stays in the repo"
    assert config.kafka_bootstrap == "127.0.0.1:29092"
    assert config.redis_url == "redis://127.0.0.1:26379/0"
    assert config.service_ports["predictor"] == 28080
    assert config.service_ports["stream-ingest"] == 28081
    assert config.topic_prefix == "staging."
    assert config.stack_file == tmp_path / "state/stack.json"


def test_relative_state_dir_is_taken_from_the_cwd(tmp_path: Path) -> None:
    config = StackConfig.from_env({"FLYWHEEL_STATE_DIR": "here"}, cwd=tmp_path)
    assert config.state_dir == tmp_path / "here"


def test_existing_cluster_variables_win_with_the_prefixed_spelling_first(tmp_path: Path) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-a:9092",
        "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": "kafka-b:9092",
        "REDIS_URL": "redis://cache:6379/2",
    }
    config = StackConfig.from_env(env, cwd=tmp_path)
    assert config.external_kafka == "kafka-b:9092"
    assert config.kafka_bootstrap == "kafka-b:9092"
    assert config.redis_url == "redis://cache:6379/2"


def test_blank_variables_count_as_unset(tmp_path: Path) -> None:
    config = StackConfig.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "  ", "FLYWHEEL_KAFKA_PORT": ""}, cwd=tmp_path
    )
    assert config.external_kafka is None
    assert config.kafka_port == 19092


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLYWHEEL_KAFKA_PORT", "kafka"),
        ("FLYWHEEL_REDIS_PORT", "70000"),
        ("FLYWHEEL_KAFKA_HEAP_MB", "2048"),
        ("FLYWHEEL_KAFKA_HEAP_MB", "64"),
    ],
)
def test_bad_values_are_refused_by_name(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        StackConfig.from_env({name: value}, cwd=tmp_path)


def test_two_components_on_one_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both use port 19092"):
        StackConfig.from_env({"FLYWHEEL_REDIS_PORT": "19092"}, cwd=tmp_path)


def test_repo_root_is_found_from_a_subfolder() -> None:
    assert find_repo_root(REPO / "cli/src") == REPO
    assert find_repo_root(Path("/")) is None
