"""Pid bookkeeping: state round-trips, identity by start time, stopping by pid only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel_cli.processes import (
    ComponentRecord,
    StackState,
    is_running,
    listener_pid,
    process_start_ticks,
    remove_pid_file,
    spawn,
    tail,
    terminate,
    write_pid_file,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs procfs")


def _record(name: str = "kafka", **changes: object) -> ComponentRecord:
    base: dict[str, object] = {
        "name": name,
        "kind": "kafka",
        "endpoint": "127.0.0.1:19092",
        "port": 19092,
        "managed": True,
        "pid": 4242,
        "start_ticks": 17,
        "argv": ("java", "kafka.Kafka"),
        "log": "/state/logs/kafka.log",
    }
    base.update(changes)
    return ComponentRecord(**base)  # type: ignore[arg-type]


def test_state_round_trips_through_stack_json(tmp_path: Path) -> None:
    path = tmp_path / "state/stack.json"
    state = StackState({"kafka": _record(), "redis": _record("redis", kind="redis", pid=7)})
    state.save(path)
    loaded = StackState.load(path)
    assert loaded.components == state.components
    assert list(loaded.components) == ["kafka", "redis"], "start order is kept"
    assert json.loads(path.read_text())["components"][0]["argv"] == ["java", "kafka.Kafka"]
    assert not path.with_name("stack.json.tmp").exists()


def test_missing_state_is_empty_and_a_future_version_is_refused(tmp_path: Path) -> None:
    assert StackState.load(tmp_path / "stack.json").components == {}
    (tmp_path / "stack.json").write_text(json.dumps({"version": 99, "components": []}))
    with pytest.raises(ValueError, match="version 99"):
        StackState.load(tmp_path / "stack.json")


def test_unknown_fields_from_a_newer_cli_are_ignored() -> None:
    data = _record().to_json() | {"added_later": True}
    assert ComponentRecord.from_json(data) == _record()


def test_pid_files_are_written_and_removed(tmp_path: Path) -> None:
    path = write_pid_file(tmp_path / "pids", "redis", 1234)
    assert path.read_text() == "1234\n"
    remove_pid_file(tmp_path / "pids", "redis")
    remove_pid_file(tmp_path / "pids", "redis")  # twice is fine
    assert not path.exists()


def test_a_live_process_is_identified_by_pid_and_start_time() -> None:
    me, ticks = os.getpid(), process_start_ticks(os.getpid())
    assert ticks is not None
    assert is_running(me)
    assert is_running(me, ticks)
    assert not is_running(me, ticks + 1), "same pid, other start time: a reused pid"
    assert not is_running(None)
    assert not is_running(0)


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        log_path=tmp_path / "logs/sleeper.log",
        env=os.environ,
        cwd=tmp_path,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_spawned_processes_run_in_their_own_session_and_log_to_a_file(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    assert os.getsid(sleeper.pid) == sleeper.pid
    assert is_running(sleeper.pid, process_start_ticks(sleeper.pid))
    for _ in range(100):
        if "up" in tail(tmp_path / "logs/sleeper.log"):
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert tail(tmp_path / "logs/sleeper.log") == "up"


def test_terminate_stops_with_sigterm_and_reaps(sleeper: subprocess.Popen[bytes]) -> None:
    ticks = process_start_ticks(sleeper.pid)
    stopped = terminate(sleeper.pid, ticks, timeout_s=10)
    assert stopped.outcome == "terminated"
    assert not is_running(sleeper.pid, ticks)


def test_terminate_falls_back_to_sigkill(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = spawn(
        [sys.executable, "-c", code], log_path=tmp_path / "x.log", env=os.environ, cwd=tmp_path
    )
    try:
        for _ in range(200):
            if "ready" in tail(tmp_path / "x.log"):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        stopped = terminate(proc.pid, process_start_ticks(proc.pid), timeout_s=0.5)
        assert stopped.outcome == "killed"
    finally:
        proc.kill()
        proc.wait()


def test_terminate_never_signals_a_pid_whose_start_time_differs(
    sleeper: subprocess.Popen[bytes],
) -> None:
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    stopped = terminate(sleeper.pid, ticks - 1, timeout_s=1)
    assert stopped.outcome == "not-running"
    assert sleeper.poll() is None, "the stranger is still alive"


def test_listener_pid_reads_a_procfs_tree(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when ... inode\n"
    # Columns as the kernel writes them; only state (0A = LISTEN) and inode matter.
    rest = "00000000:00000000 00:00000000 00000000     0        0"
    listening = f"   0: 0100007F:4AA4 00000000:0000 0A {rest} 5555 1\n"
    established = f"   1: 0100007F:4AA4 0100007F:9C40 01 {rest} 6666 1\n"
    (tmp_path / "net/tcp").write_text(header + listening + established)
    (tmp_path / "net/tcp6").write_text(header)
    fds = tmp_path / "321/fd"
    fds.mkdir(parents=True)
    (fds / "3").symlink_to("socket:[6666]")
    (fds / "4").symlink_to("socket:[5555]")
    (tmp_path / "self").mkdir()
    assert listener_pid(0x4AA4, proc=tmp_path) == 321  # 0x4AA4 == 19108
    assert listener_pid(1, proc=tmp_path) is None


def test_tail_returns_the_last_lines_or_nothing(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 2) == "line 98\nline 99"
    assert tail(tmp_path / "missing.log") == ""
    assert tail(None) == ""


def test_a_corrupt_state_file_is_reported_not_guessed_at(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"stack\.json is unreadable"):
        StackState.load(tmp_path / "stack.json")
