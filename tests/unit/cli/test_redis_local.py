"""The redis-server command line: loopback, no persistence, foreground."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel_cli import redis_local
from flywheel_cli.config import StackConfig


def test_redis_runs_in_the_foreground_on_loopback_without_persistence(tmp_path: Path) -> None:
    config = StackConfig.from_env(
        {"FLYWHEEL_STATE_DIR": str(tmp_path), "FLYWHEEL_REDIS_PORT": "26379"}, cwd=tmp_path
    )
    argv = redis_local.redis_argv(config, redis_server="/usr/bin/redis-server")
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert argv[0] == "/usr/bin/redis-server"
    assert options["--bind"] == "127.0.0.1"
    assert options["--port"] == "26379"
    assert options["--daemonize"] == "no"
    assert options["--save"] == ""
    assert options["--appendonly"] == "no"
    assert options["--dir"] == str(tmp_path / "redis")


def test_a_missing_redis_server_points_at_make_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_local.shutil, "which", lambda _name: None)
    config = StackConfig.from_env({"FLYWHEEL_STATE_DIR": str(tmp_path)}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="make install"):
        redis_local.redis_argv(config)
