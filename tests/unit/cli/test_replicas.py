"""Replicas in the local stack: names, ports, --scale parsing, the environment they get."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel_cli.__main__ import build_parser
from flywheel_cli.components import SERVICES, parse_replica, parse_scale, service_by_name
from flywheel_cli.config import StackConfig
from flywheel_cli.local_stack import LocalStack, StackError, service_environment
from flywheel_cli.stack import _replicas


def test_only_the_pipeline_services_scale_out() -> None:
    assert [spec.name for spec in SERVICES if spec.scalable] == [
        "stream-ingest",
        "trainer",
        "predictor",
    ]


def test_replica_names_and_ports_follow_replica_one() -> None:
    predictor = service_by_name("predictor")
    assert [predictor.replica_name(i) for i in (1, 2, 3)] == [
        "predictor",
        "predictor-2",
        "predictor-3",
    ]
    assert [predictor.replica_port(18080, i) for i in (1, 2, 3)] == [18080, 18180, 18280]
    assert parse_replica("predictor-2") == (predictor, 2)
    assert parse_replica("stream-ingest") == (service_by_name("stream-ingest"), 1)
    assert parse_replica("stream-ingest-3") == (service_by_name("stream-ingest"), 3)
    for name in ("predictor-1", "predictor-x", "predictor-10", "nope"):
        with pytest.raises(KeyError):
            parse_replica(name)


def test_the_predictor_is_probed_for_readiness_the_others_for_health() -> None:
    assert service_by_name("predictor").probe_path == "/readyz"
    assert service_by_name("trainer").probe_path == "/healthz"


def test_scale_parses_per_service_counts_and_names_the_bad_part() -> None:
    assert parse_scale("stream-ingest=2, trainer=3,predictor=1") == {
        "stream-ingest": 2,
        "trainer": 3,
        "predictor": 1,
    }
    assert parse_scale("") == {}
    for text, message in [
        ("trainer", "'trainer' is not <service>=<replicas>"),
        ("trainer=two", "not <service>=<replicas>"),
        ("ghost=2", "unknown service 'ghost'"),
        ("trainer=0", "outside 1..9"),
        ("alerter=2", "alerter runs once per deployment"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_scale(text)


def test_cli_replicas_scales_every_scalable_service_and_scale_wins() -> None:
    args = build_parser().parse_args(["stack", "up", "--replicas", "2", "--scale", "trainer=3"])
    assert _replicas(args) == {"stream-ingest": 2, "trainer": 3, "predictor": 2}
    default = build_parser().parse_args(["stack", "up"])
    assert _replicas(default) == {}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stack", "up", "--replicas", "0"])
    bad = build_parser().parse_args(["stack", "up", "--scale", "alerter=2"])
    with pytest.raises(ConfigError, match="alerter"):
        _replicas(bad)


def test_replica_ports_take_part_in_the_collision_check(tmp_path: Path) -> None:
    config = StackConfig.from_env({}, cwd=tmp_path)
    assert config.with_replicas({"trainer": 2}).replica_count("trainer") == 2
    assert config.replica_count("predictor") == 1
    # trainer-2 would land on 19202: refused when the predictor already sits there.
    clash = StackConfig.from_env({"FLYWHEEL_PREDICTOR_PORT": "19202"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="both use port 19202"):
        clash.with_replicas({"trainer": 2})


def test_a_replica_gets_its_own_port_and_instance_but_the_shared_group(tmp_path: Path) -> None:
    config = StackConfig.from_env({}, cwd=tmp_path).with_replicas({"stream-ingest": 2})
    spec = service_by_name("stream-ingest")
    env = service_environment(spec, 19201, {}, config, instance="stream-ingest-2")
    assert env["FLYWHEEL_INGEST_PORT"] == "19201"
    assert env["FLYWHEEL_INSTANCE_ID"] == "stream-ingest-2"
    assert not any("GROUP" in name or "TRANSACTIONAL" in name for name in env)
    assert "FLYWHEEL_INSTANCE_ID" not in service_environment(spec, 19101, {}, config)


def test_restart_refuses_what_the_stack_did_not_start(tmp_path: Path) -> None:
    config = StackConfig.from_env({"FLYWHEEL_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    stack = LocalStack(config, env={}, python="python")
    with pytest.raises(StackError, match="predictor-2: no such service"):
        stack.restart("predictor-2")
