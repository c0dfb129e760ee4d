"""Rendering the broker's config, the jar-cache check and the format-once rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel_cli import kafka_local
from flywheel_cli.config import StackConfig


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    env = {
        "FLYWHEEL_STATE_DIR": str(tmp_path / "state"),
        "FLYWHEEL_KAFKA_LIB_DIR": str(tmp_path / "lib"),
        "FLYWHEEL_KAFKA_PORT": "29092",
        "FLYWHEEL_KAFKA_CONTROLLER_PORT": "29093",
    }
    return StackConfig.from_env(env, cwd=tmp_path)


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_server_properties_are_a_loopback_single_node_kraft_broker(config: StackConfig) -> None:
    props = _props(kafka_local.render_server_properties(config))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert props["log.dirs"] == str(config.kafka_data_dir)
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert int(props["log.cleaner.dedupe.buffer.size"]) <= 32 * 1024 * 1024
    factors = {key: value for key, value in props.items() if "replication.factor" in key}
    assert factors and set(factors.values()) == {"1"}
    assert props["transaction.state.log.min.isr"] == "1"
    assert "0.0.0.0" not in kafka_local.render_server_properties(config)


def test_log4j2_properties_log_to_a_capped_file_in_the_state_folder(tmp_path: Path) -> None:
    text = kafka_local.render_log4j2_properties(tmp_path / "logs")
    assert f"appender.file.fileName = {tmp_path / 'logs/kafka.log'}" in text
    assert "rootLogger.level = INFO" in text
    assert "SizeBasedTriggeringPolicy" in text
    assert "logger.request.level = WARN" in text


def test_broker_argv_caps_the_heap_and_uses_the_jar_cache(config: StackConfig) -> None:
    argv = kafka_local.broker_argv(config)
    assert "-Xmx512m" in argv
    assert argv[argv.index("-cp") + 1] == f"{config.kafka_lib_dir}/*"
    assert argv[-2:] == ["kafka.Kafka", str(config.kafka_dir / "server.properties")]


def test_cluster_ids_look_like_kafkas() -> None:
    ids = {kafka_local.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", cid) and cid[0] != "-" for cid in ids)


def test_jar_cache_needs_the_broker_jar_and_a_matching_pom_stamp(tmp_path: Path) -> None:
    lib, pom = tmp_path / "lib", tmp_path / "pom.xml"
    lib.mkdir()
    pom.write_text("<project/>")
    assert not kafka_local.jars_present(lib, pom)
    (lib / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    assert kafka_local.jars_present(lib, pom), "an unstamped, hand-filled cache is trusted"
    (lib / kafka_local.STAMP_NAME).write_text("0" * 64)
    assert not kafka_local.jars_present(lib, pom), "a stamp for another pom means stale"
    digest = kafka_local._pom_digest(pom)
    (lib / kafka_local.STAMP_NAME).write_text(digest + "\n")
    assert kafka_local.jars_present(lib, pom)


def test_ensure_jars_does_nothing_when_the_cache_is_current(tmp_path: Path) -> None:
    lib, pom = tmp_path / "lib", tmp_path / "pom.xml"
    lib.mkdir()
    pom.write_text("<project/>")
    (lib / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    assert kafka_local.ensure_jars(lib, pom) is False


def test_ensure_jars_without_a_pom_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(kafka_local.JarsError, match=r"pom\.xml not found"):
        kafka_local.ensure_jars(tmp_path / "lib", tmp_path / "pom.xml")


def test_formatted_storage_is_not_formatted_again(config: StackConfig) -> None:
    config.kafka_data_dir.mkdir(parents=True)
    (config.kafka_data_dir / "meta.properties").write_text("cluster.id=x\n")
    (config.kafka_dir / "format.json").write_text(json.dumps({"controller_port": 29093}))
    assert kafka_local.ensure_storage_formatted(config) is None


def test_moving_the_controller_port_after_formatting_is_refused(config: StackConfig) -> None:
    config.kafka_data_dir.mkdir(parents=True)
    (config.kafka_data_dir / "meta.properties").write_text("cluster.id=x\n")
    (config.kafka_dir / "format.json").write_text(json.dumps({"controller_port": 19093}))
    with pytest.raises(ConfigError, match="formatted for controller port 19093"):
        kafka_local.ensure_storage_formatted(config)


@pytest.fixture
def fake_jdk_config(tmp_path: Path) -> StackConfig:
    java = tmp_path / "jdk/bin/java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    (tmp_path / "cache/lib").mkdir(parents=True)
    (tmp_path / "cache/lib/kafka_2.13-4.1.1.jar").write_bytes(b"")
    env = {
        "FLYWHEEL_STATE_DIR": str(tmp_path / "state"),
        "FLYWHEEL_KAFKA_LIB_DIR": str(tmp_path / "cache/lib"),
        "JAVA_HOME": str(tmp_path / "jdk"),
    }
    return StackConfig.from_env(env, cwd=tmp_path)


def _option(argv: list[str], prefix: str) -> str | None:
    return next((arg.removeprefix(prefix) for arg in argv if arg.startswith(prefix)), None)


def test_the_first_broker_writes_a_class_archive_that_later_brokers_share(
    fake_jdk_config: StackConfig,
) -> None:
    first = kafka_local.broker_argv(fake_jdk_config)
    partial = _option(first, "-XX:ArchiveClassesAtExit=")
    assert partial and _option(first, "-XX:SharedArchiveFile=") is None
    assert Path(partial).parent == fake_jdk_config.kafka_lib_dir.parent
    Path(partial).write_bytes(b"archive")  # what the JVM does on a clean exit

    archive = kafka_local.publish_class_archive(first)
    assert archive == kafka_local.class_archive(fake_jdk_config)
    assert archive.read_bytes() == b"archive" and not Path(partial).exists()

    later = kafka_local.broker_argv(fake_jdk_config)
    assert _option(later, "-XX:SharedArchiveFile=") == str(archive)
    assert _option(later, "-XX:ArchiveClassesAtExit=") is None
    assert later.index(f"-XX:SharedArchiveFile={archive}") < later.index("kafka.Kafka")


def test_a_second_archive_is_discarded_and_a_killed_broker_leaves_none(
    fake_jdk_config: StackConfig,
) -> None:
    racing = [kafka_local.broker_argv(fake_jdk_config) for _ in range(2)]
    for argv in racing:
        Path(_option(argv, "-XX:ArchiveClassesAtExit=") or "").write_bytes(b"x")
    assert kafka_local.publish_class_archive(racing[0]) is not None
    assert kafka_local.publish_class_archive(racing[1]) is None
    assert sorted(p.name for p in fake_jdk_config.kafka_lib_dir.parent.iterdir()) == [
        kafka_local.class_archive(fake_jdk_config).name,
        "lib",
    ]
    killed = kafka_local.broker_argv(fake_jdk_config, class_sharing=False)
    assert kafka_local.publish_class_archive(killed) is None


def test_the_archive_name_changes_with_the_jars(fake_jdk_config: StackConfig) -> None:
    before = kafka_local.class_archive(fake_jdk_config)
    (fake_jdk_config.kafka_lib_dir / "kafka_2.13-4.2.0.jar").write_bytes(b"")
    assert kafka_local.class_archive(fake_jdk_config) != before
