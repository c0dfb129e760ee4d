"""docker_engine_available asks the daemon, not just the client."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from flywheel_cli import docker_engine


def _runner(returncode: int, stdout: str) -> Any:
    def run(argv: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1:3] == ["info", "--format"]
        return subprocess.CompletedProcess(argv, returncode, stdout, "")

    return run


@pytest.fixture(autouse=True)
def _docker_client_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_engine.shutil, "which", lambda _name: "/usr/bin/docker")


def test_an_answering_daemon_counts() -> None:
    assert docker_engine.docker_engine_available(run=_runner(0, "28.2.2\n"))


def test_a_client_without_a_daemon_does_not() -> None:
    assert not docker_engine.docker_engine_available(run=_runner(1, ""))


def test_a_hung_daemon_does_not() -> None:
    def hang(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    assert not docker_engine.docker_engine_available(run=hang, timeout_s=0.1)


def test_no_client_at_all_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_engine.shutil, "which", lambda _name: None)
    assert not docker_engine.docker_engine_available(run=_runner(0, "28.2.2"))
