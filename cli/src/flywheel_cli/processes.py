"""Process bookkeeping for the local stack: spawn, identify, stop, remember.

The rule is that ``down`` stops only what ``up`` started, by pid, never by name.
A bare pid is not enough for that: after a reboot or a long uptime the number can
belong to an unrelated process. So each record also keeps the process's start time
(field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) and a pid whose start
time no longer matches is treated as gone, never signalled.

Children are started in their own session, so they outlive the CLI invocation that
spawned them and a Ctrl-C in the operator's shell does not reach them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ComponentRecord",
    "StackState",
    "Stopped",
    "file_lock",
    "is_running",
    "kill_now",
    "listener_pid",
    "port_open",
    "process_start_ticks",
    "remove_pid_file",
    "spawn",
    "tail",
    "terminate",
    "write_pid_file",
]

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ComponentRecord:
    """What ``up`` knows about one component (Kafka, Redis or a service)."""

    name: str
    kind: str  # "kafka" | "redis" | "service"
    endpoint: str
    port: int | None
    # False when the component was already there (external cluster, or a broker some
    # other tool started): then ``down`` never touches it.
    managed: bool
    pid: int | None = None
    start_ticks: int | None = None
    argv: tuple[str, ...] = ()
    log: str | None = None
    health_url: str | None = None
    started_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["argv"] = tuple(known.get("argv", ()))
        return cls(**known)


@dataclass(slots=True)
class StackState:
    """The contents of ``stack.json``: the components ``up`` started or adopted."""

    components: dict[str, ComponentRecord] = field(default_factory=dict)
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "components": [record.to_json() for record in self.components.values()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StackState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported stack.json version {data.get('version')!r}")
        records = [ComponentRecord.from_json(item) for item in data.get("components", [])]
        return cls(components={record.name: record for record in records})

    @classmethod
    def load(cls, path: Path) -> StackState:
        """The saved state, or an empty one when ``path`` does not exist."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        try:
            return cls.from_json(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path} is unreadable ({exc})") from exc

    def save(self, path: Path) -> None:
        # Write-then-rename: a crash mid-write must not leave a state file that makes
        # the next `down` forget which pids it owns.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses; everything
    # after the last ')' is space-separated, starting with field 3 (state).
    return raw[raw.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if unknown."""
    fields = _proc_stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def is_running(pid: int | None, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` is a live process and, when ``start_ticks`` is given, the same one."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    fields = _proc_stat_fields(pid)
    if fields is None:
        # No procfs (macOS): signal 0 succeeding is the best evidence there is.
        return True
    if fields[0] in ("Z", "X"):
        # A zombie has exited; its parent (often an init that never reaps) holds the pid.
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


@dataclass(frozen=True, slots=True)
class Stopped:
    """How a stop went: ``terminated`` (SIGTERM sufficed), ``killed``, or ``not-running``."""

    pid: int
    outcome: str
    seconds: float


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        # Children run in their own session, so the pid leads a process group that
        # holds anything it forked (a JVM's helpers, a server's workers).
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, start_ticks: int | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        if not is_running(pid, start_ticks):
            return True
        time.sleep(0.05)
    return not is_running(pid, start_ticks)


def terminate(pid: int, start_ticks: int | None, *, timeout_s: float = 30.0) -> Stopped:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Never signals a reused pid."""
    started = time.monotonic()
    if not is_running(pid, start_ticks):
        return Stopped(pid, "not-running", 0.0)
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, start_ticks, timeout_s):
        return Stopped(pid, "terminated", time.monotonic() - started)
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, start_ticks, 10.0)
    return Stopped(pid, "killed", time.monotonic() - started)


def kill_now(pid: int, start_ticks: int | None) -> Stopped:
    """SIGKILL without warning (a crash on purpose); never signals a reused pid."""
    started = time.monotonic()
    if not is_running(pid, start_ticks):
        return Stopped(pid, "not-running", 0.0)
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, start_ticks, 10.0)
    return Stopped(pid, "killed", time.monotonic() - started)


def spawn(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached, stdout and stderr appended to ``log_path``.

    The caller records ``proc.pid``; it does not wait on the returned handle unless it
    also stops the process itself (tests do).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # argv comes from the stack's own table and config, run without a shell.
        return subprocess.Popen(  # noqa: S603
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )


def write_pid_file(pids_dir: Path, name: str, pid: int) -> Path:
    pids_dir.mkdir(parents=True, exist_ok=True)
    path = pids_dir / f"{name}.pid"
    path.write_text(f"{pid}\n", encoding="ascii")
    return path


def remove_pid_file(pids_dir: Path, name: str) -> None:
    (pids_dir / f"{name}.pid").unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise ``up``/``down`` runs on one state folder (two racing `up`s would each
    start a broker on the same port)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def port_open(host: str, port: int, *, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _listening_inodes(port: int, proc_net: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc_net / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            # cols: sl local_address rem_address st ... inode (index 9); 0A = LISTEN
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def listener_pid(port: int, *, proc: Path = Path("/proc")) -> int | None:
    """The pid listening on TCP ``port``, if procfs lets us see it (best effort).

    Used to report who holds a port that ``up`` did not take, never to decide what
    to stop.
    """
    inodes = _listening_inodes(port, proc / "net")
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        return int(entry.name)
    return None


def tail(path: Path | str | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    if path is None:
        return ""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
