"""``flywheel-demo`` arguments and the demo services' settings (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerter.config import Settings as AlerterSettings
from alerter.service import AlerterService
from flywheel_demo.__main__ import parse_args
from flywheel_demo.stack import DemoStack, service_settings
from predictor.config import Settings as PredictorSettings
from predictor.service import PredictorService
from stream_ingest.config import Settings as IngestSettings
from stream_ingest.service import StreamIngest
from tests.unit.alerter.conftest import simple_config
from trainer.config import Settings as TrainerSettings
from trainer.service import TrainerService


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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings("r1", tmp_path / "alerter.yaml")
    # The services scope their own names by the topic prefix; a per-run name set here
    # as well would come out prefixed twice (demo-r1.demo-r1.trainer).
    assert not [k for k in settings if "GROUP" in k or "TRANSACTIONAL" in k]
    assert settings["FLYWHEEL_REDIS_KEY_PREFIX"] == "flywheel:demo-r1:"
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", DemoStack("r1", tmp_path, tmp_path).topic_prefix)
    trainer = TrainerService(TrainerSettings())
    names = [
        StreamIngest(IngestSettings(), serve_http=False).group_id,
        trainer.group_id,
        trainer.transactional_id(0),
        AlerterService(AlerterSettings(), simple_config()).group_id,
        PredictorService(PredictorSettings()).batch_group_id,
    ]
    assert names == [
        "demo-r1.flywheel.stream-ingest",
        "demo-r1.flywheel-trainer",
        "demo-r1.flywheel-trainer.training.batches.0",
        "demo-r1.flywheel-alerter",
        "demo-r1.flywheel-predictor-batch",
    ]


def test_the_demo_namespace(tmp_path: Path) -> None:
    stack = DemoStack(run_id="r1", state_dir=tmp_path, alerter_config=tmp_path)
    assert stack.topic_prefix == "demo-r1."
    assert stack.redis_key_prefix == "flywheel:demo-r1:"
