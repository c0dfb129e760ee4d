"""The CLI's parser: command groups register themselves; errors become exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel_cli.__main__ import build_parser, main


def test_stack_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["stack", "status", "--json"])
    assert args.json is True and callable(args.func)
    assert parser.parse_args(["stack", "up", "--timeout", "5"]).timeout == 5.0
    for command in ("down", "env", "jars"):
        assert callable(parser.parse_args(["stack", command]).func)


def test_a_group_without_a_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["stack"])
    assert exited.value.code == 2


def test_configuration_errors_exit_2_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FLYWHEEL_KAFKA_PORT", "not-a-port")
    monkeypatch.chdir(tmp_path)
    assert main(["stack", "env"]) == 2
    assert "FLYWHEEL_KAFKA_PORT" in capsys.readouterr().err


def test_env_prints_shell_exports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("FLYWHEEL_KAFKA_PORT", "29092")
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    assert main(["stack", "env"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29092" in out
    assert f"export FLYWHEEL_STATE_DIR={tmp_path}" in out
