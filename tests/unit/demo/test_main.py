"""``flywheel-demo`` arguments and the demo services' settings (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel_demo.__main__ import parse_args
from flywheel_demo.stack import DemoStack, service_settings


def test_defaults_fit_the_three_minute_budget() -> None:
    options = parse_args([])
    assert options.duration_s == 100.0
    assert options.drift_at == 0.5
    assert options.live is None  # rich's Live view only on a terminal


def test_flags() -> None:
    options = parse_args(["--duration", "40", "--drift-at", "0.4", "--rate", "30", "--plain"])
    assert (options.duration_s, options.drift_at, options.rate, options.live) == (
        40,
        0.4,
        30,
        False,
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--duration", "5"], "--duration"),
        (["--drift-at", "0.95"], "--drift-at"),
        (["--rate", "0"], "--rate"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_demo_services_never_share_groups_or_transactional_ids_with_the_stack(
    tmp_path: Path,
) -> None:
    settings = service_settings("r1", tmp_path / "alerter.yaml")
    shared_defaults = {"flywheel.stream-ingest", "flywheel-trainer", "flywheel-alerter"}
    names = [
        settings[key]
        for key in (
            "FLYWHEEL_INGEST_GROUP_ID",
            "FLYWHEEL_INGEST_TRANSACTIONAL_ID",
            "FLYWHEEL_TRAINER_GROUP_ID",
            "FLYWHEEL_TRAINER_TRANSACTIONAL_ID",
            "FLYWHEEL_ALERTER_CONSUMER_GROUP",
        )
    ]
    assert all("demo-r1" in name for name in names)
    assert not shared_defaults & set(names)
    assert settings["FLYWHEEL_REDIS_KEY_PREFIX"] == "flywheel:demo-r1:"
    assert settings["FLYWHEEL_PREDICTOR_BATCH_REQUESTS"] == "false"  # fixed group id otherwise


def test_the_demo_namespace(tmp_path: Path) -> None:
    stack = DemoStack(run_id="r1", state_dir=tmp_path, alerter_config=tmp_path)
    assert stack.topic_prefix == "demo-r1."
    assert stack.redis_key_prefix == "flywheel:demo-r1:"
