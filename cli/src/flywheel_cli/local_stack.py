"""Bringing the local stack up and down: Kafka and Redis, the topics, then the services.

The rules, in the order ``up`` applies them to each component:

1. pointed elsewhere (``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``): use it, start nothing;
2. a process this state folder started is still running: keep it (``up`` is idempotent);
3. something else already listens on the component's port: use it, never stop it
   (a stack from another checkout, or one a developer started by hand);
4. otherwise start it, detached, logging into the state folder.

Only components started in step 4 are ``managed``; ``down`` stops exactly those.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from flywheel.errors import FlywheelError
from flywheel_cli import kafka_local, redis_local
from flywheel_cli.components import SERVICES, ServiceSpec, available_services, parse_replica
from flywheel_cli.config import LOOPBACK, StackConfig
from flywheel_cli.health import ComponentStatus, Health, probe, shown_pid
from flywheel_cli.processes import (
    ComponentRecord,
    StackState,
    Stopped,
    file_lock,
    is_running,
    kill_now,
    listener_pid,
    port_open,
    process_start_ticks,
    remove_pid_file,
    spawn,
    tail,
    terminate,
    write_pid_file,
)
from flywheel_cli.stack_topics import create_topics

__all__ = ["LocalStack", "StackError", "service_environment"]

# A broker's controlled shutdown flushes logs and hands off leadership; give it time
# before SIGKILL, which would cost a log recovery on the next start.
STOP_TIMEOUT_S = {"kafka": 60.0, "redis": 15.0, "service": 20.0}


class StackError(FlywheelError):
    """The local stack could not be brought to the requested state."""


def _endpoint_port(endpoint: str, default: int) -> int | None:
    first = endpoint.split(",", maxsplit=1)[0]
    try:
        if "://" in first:
            return urlsplit(first).port or default
        return int(first.rsplit(":", 1)[1])
    except (ValueError, IndexError):
        return None


def service_environment(
    spec: ServiceSpec,
    port: int,
    base: Mapping[str, str],
    config: StackConfig,
    *,
    instance: str | None = None,
) -> dict[str, str]:
    """The environment a service process starts with.

    The ``FLYWHEEL_``-prefixed names win over the bare ones in the services' settings,
    so setting them here beats anything stale inherited from the operator's shell.
    ``instance`` names a replica (heartbeats, Kafka client ids); consumer groups and
    transactional-id stems are left alone, so replicas share the service's work.
    """
    env = dict(base)
    env.update(spec.env)
    env["FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS"] = config.kafka_bootstrap
    env["FLYWHEEL_REDIS_URL"] = config.redis_url
    if config.topic_prefix:
        env["FLYWHEEL_TOPIC_PREFIX"] = config.topic_prefix
    env[spec.port_env] = str(port)
    if instance is not None:
        env["FLYWHEEL_INSTANCE_ID"] = instance
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LocalStack:
    """Operations on one state folder. ``echo`` receives progress lines.

    ``services`` defaults to every service in the table that can be run today.
    """

    def __init__(
        self,
        config: StackConfig,
        *,
        env: Mapping[str, str],
        python: str,
        echo: Callable[[str], None] = lambda _line: None,
        services: Sequence[ServiceSpec] | None = None,
    ) -> None:
        self.config = config
        self.env = dict(env)
        self.python = python
        self.echo = echo
        self.services = services
        # Handles of the children this object spawned, so one that exits is reaped
        # here (no zombie, no "still running" warning) when this process outlives it.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- records for the two dependencies -------------------------------------------------

    def _kafka_record(self, *, managed: bool, pid: int | None = None) -> ComponentRecord:
        cfg = self.config
        return ComponentRecord(
            name="kafka",
            kind="kafka",
            endpoint=cfg.kafka_bootstrap,
            port=_endpoint_port(cfg.kafka_bootstrap, 9092),
            managed=managed,
            pid=pid,
            log=str(cfg.logs_dir / "kafka.log") if managed else None,
        )

    def _redis_record(self, *, managed: bool, pid: int | None = None) -> ComponentRecord:
        cfg = self.config
        return ComponentRecord(
            name="redis",
            kind="redis",
            endpoint=cfg.redis_url,
            port=_endpoint_port(cfg.redis_url, 6379),
            managed=managed,
            pid=pid,
            log=str(cfg.logs_dir / "redis.log") if managed else None,
        )

    def default_records(self) -> list[ComponentRecord]:
        """Kafka and Redis as the config describes them, before anything is started."""
        return [self._kafka_record(managed=False), self._redis_record(managed=False)]

    def _load_state(self) -> StackState:
        try:
            return StackState.load(self.config.stack_file)
        except ValueError as exc:
            # Guessing which pids are ours would risk signalling strangers: stop here.
            raise StackError(
                f"{exc}: stop any stack processes by hand (pids in "
                f"{self.config.pids_dir}), then delete the file"
            ) from exc

    def status(self) -> list[ComponentStatus]:
        """Every component ``up`` recorded, plus Kafka and Redis as configured if not."""
        state = self._load_state()
        records = dict(state.components)
        for default in self.default_records():
            records.setdefault(default.name, default)
        order = ["kafka", "redis"] + [name for name in records if name not in ("kafka", "redis")]
        return [
            ComponentStatus(record, shown_pid(record), probe(record))
            for record in (records[name] for name in order)
        ]

    # -- up ------------------------------------------------------------------------------

    def _spawn(
        self,
        record: ComponentRecord,
        argv: list[str],
        *,
        stdout: Path,
        env: Mapping[str, str],
        cwd: Path,
    ) -> ComponentRecord:
        proc = spawn(argv, log_path=stdout, env=env, cwd=cwd)
        self._children[proc.pid] = proc
        write_pid_file(self.config.pids_dir, record.name, proc.pid)
        self.echo(f"{record.name}: started pid {proc.pid}, log {record.log}")
        return replace(
            record,
            pid=proc.pid,
            start_ticks=process_start_ticks(proc.pid),
            argv=tuple(argv),
            started_at=time.time(),
        )

    def _reap(self, pid: int | None) -> None:
        """Collect the exit status of a child of ours known to have exited."""
        proc = self._children.pop(pid or 0, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _reuse_or_adopt(
        self, current: ComponentRecord | None, port: int | None, adopt: ComponentRecord
    ) -> ComponentRecord | None:
        """Rules 2 and 3 of the module docstring; None means "start one"."""
        if current is not None and current.managed:
            if is_running(current.pid, current.start_ticks):
                self.echo(f"{current.name}: already running, pid {current.pid}")
                return current
            self.echo(f"{current.name}: pid {current.pid} is gone; starting a new one")
            self._reap(current.pid)
        if port is not None and port_open(LOOPBACK, port):
            holder = listener_pid(port)
            self.echo(
                f"{adopt.name}: {LOOPBACK}:{port} is already served"
                + (f" by pid {holder}" if holder else "")
                + "; using it, and `down` will leave it alone"
            )
            return adopt
        return None

    def _ensure_kafka(self, state: StackState) -> ComponentRecord:
        cfg = self.config
        if cfg.external_kafka:
            self.echo(f"kafka: using {cfg.external_kafka} (KAFKA_BOOTSTRAP_SERVERS)")
            return self._kafka_record(managed=False)
        found = self._reuse_or_adopt(
            state.components.get("kafka"), cfg.kafka_port, self._kafka_record(managed=False)
        )
        if found is not None:
            return found
        if port_open(LOOPBACK, cfg.controller_port):
            holder = listener_pid(cfg.controller_port)
            raise StackError(
                f"controller port {cfg.controller_port} is taken"
                + (f" by pid {holder}" if holder else "")
                + ": set FLYWHEEL_KAFKA_CONTROLLER_PORT"
            )
        if kafka_local.ensure_jars(cfg.kafka_lib_dir, cfg.pom_path):
            self.echo(f"kafka: fetched jars into {cfg.kafka_lib_dir}")
        kafka_local.write_broker_config(cfg)
        cluster_id = kafka_local.ensure_storage_formatted(cfg)
        if cluster_id:
            self.echo(f"kafka: formatted {cfg.kafka_data_dir} (cluster {cluster_id})")
        return self._spawn(
            self._kafka_record(managed=True),
            kafka_local.broker_argv(cfg),
            stdout=cfg.logs_dir / "kafka.stdout.log",
            env=self.env,
            cwd=cfg.kafka_dir,
        )

    def _ensure_redis(self, state: StackState) -> ComponentRecord:
        cfg = self.config
        if cfg.external_redis:
            self.echo(f"redis: using {cfg.external_redis} (REDIS_URL)")
            return self._redis_record(managed=False)
        found = self._reuse_or_adopt(
            state.components.get("redis"), cfg.redis_port, self._redis_record(managed=False)
        )
        if found is not None:
            return found
        cfg.redis_dir.mkdir(parents=True, exist_ok=True)
        return self._spawn(
            self._redis_record(managed=True),
            redis_local.redis_argv(cfg),
            stdout=cfg.logs_dir / "redis.log",
            env=self.env,
            cwd=cfg.redis_dir,
        )

    def _service_record(self, spec: ServiceSpec, index: int) -> ComponentRecord:
        """Replica ``index`` (1 = the service itself) as ``up`` would start it."""
        name = spec.replica_name(index)
        port = spec.replica_port(self.config.service_ports.get(spec.name, spec.default_port), index)
        probe_path = spec.probe_path
        return ComponentRecord(
            name=name,
            kind="service",
            endpoint=f"{LOOPBACK}:{port}",
            port=port,
            managed=True,
            log=str(self.config.logs_dir / f"{name}.log"),
            health_url=f"http://{LOOPBACK}:{port}{probe_path}" if probe_path else None,
        )

    def _spawn_service(self, spec: ServiceSpec, index: int) -> ComponentRecord:
        record = self._service_record(spec, index)
        assert record.port is not None
        return self._spawn(
            record,
            spec.argv(self.python),
            stdout=Path(record.log or os.devnull),
            env=service_environment(
                spec,
                record.port,
                self.env,
                self.config,
                instance=record.name if index > 1 else None,
            ),
            cwd=self.config.repo_root,
        )

    def _ensure_service(
        self, spec: ServiceSpec, state: StackState, index: int = 1
    ) -> ComponentRecord:
        record = self._service_record(spec, index)
        found = self._reuse_or_adopt(
            state.components.get(record.name), record.port, replace(record, managed=False, log=None)
        )
        if found is not None:
            return found
        return self._spawn_service(spec, index)

    def _wait_healthy(self, records: Iterable[ComponentRecord], deadline: float) -> None:
        pending = {record.name: record for record in records}
        last: dict[str, Health] = {}
        while pending:
            for name, record in list(pending.items()):
                if record.managed and not is_running(record.pid, record.start_ticks):
                    raise StackError(f"{name} exited during start-up.\n{self._log_tail(record)}")
                remaining = deadline - time.monotonic()
                health = probe(record, timeout_s=max(0.5, min(5.0, remaining)))
                if health.healthy:
                    del pending[name]
                    self.echo(f"{name}: healthy ({health.detail})")
                else:
                    last[name] = health
            if pending and time.monotonic() >= deadline:
                lines = [f"  {name}: {last[name].detail}" for name in pending]
                tails = [self._log_tail(pending[name]) for name in pending]
                raise StackError(
                    "not healthy before the deadline:\n" + "\n".join(lines + tails).rstrip()
                )
            if pending:
                time.sleep(0.1)

    def _log_tail(self, record: ComponentRecord) -> str:
        logs = [record.log]
        if record.kind == "kafka" and record.managed:
            logs.append(str(self.config.logs_dir / "kafka.stdout.log"))
        chunks = [f"--- {log} ---\n{text}" for log in logs if log and (text := tail(log))]
        return "\n".join(chunks)

    def up(self, *, timeout_s: float = 60.0) -> list[ComponentRecord]:
        """Start whatever is missing and wait until everything is healthy."""
        deadline = time.monotonic() + timeout_s
        with file_lock(self.config.lock_file):
            state = self._load_state()
            try:
                for ensure in (self._ensure_kafka, self._ensure_redis):
                    record = ensure(state)
                    state.components[record.name] = record
            finally:
                state.save(self.config.stack_file)  # record every pid we spawned, even on error
            self._wait_healthy([state.components["kafka"], state.components["redis"]], deadline)
            created = create_topics(self.config, deadline)
            self.echo(f"topics: created {len(created)}" if created else "topics: all present")
            services = []
            try:
                services_to_run = self.services
                if services_to_run is None:
                    services_to_run = available_services()
                for spec in services_to_run:
                    for index in range(1, self.config.replica_count(spec.name) + 1):
                        record = self._ensure_service(spec, state, index)
                        state.components[record.name] = record
                        services.append(record)
            finally:
                state.save(self.config.stack_file)
            self._wait_healthy(services, deadline)
            return list(state.components.values())

    # -- down ----------------------------------------------------------------------------

    def down(self) -> list[tuple[ComponentRecord, Stopped | None]]:
        """Stop what ``up`` started, services first; forget what it only used.

        Two waves, each stopped in parallel: the services (so they flush into a live
        Kafka), then Kafka and Redis.
        """
        results: list[tuple[ComponentRecord, Stopped | None]] = []
        with file_lock(self.config.lock_file):
            state = self._load_state()
            records = list(reversed(state.components.values()))
            services = [record for record in records if record.kind == "service"]
            dependencies = [record for record in records if record.kind != "service"]
            for wave in (services, dependencies):
                with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
                    stopped_wave = list(pool.map(self._stop, wave))
                for record, stopped in zip(wave, stopped_wave, strict=True):
                    self._reap(record.pid)
                    if record.kind == "kafka" and stopped and stopped.outcome == "terminated":
                        archive = kafka_local.publish_class_archive(record.argv)
                        if archive:
                            self.echo(f"kafka: class-data archive for faster starts: {archive}")
                    remove_pid_file(self.config.pids_dir, record.name)
                    del state.components[record.name]
                    results.append((record, stopped))
                state.save(self.config.stack_file)
            self.config.stack_file.unlink(missing_ok=True)
            self._report_stray_pid_files()
        return results

    # -- restart -------------------------------------------------------------------------

    def restart(
        self,
        name: str,
        *,
        kill: bool = False,
        pause_s: float = 0.0,
        timeout_s: float = 60.0,
    ) -> tuple[Stopped, ComponentRecord]:
        """Stop one service process this stack started, start it again, wait until healthy.

        ``kill`` sends SIGKILL at once (a crash: no flush, no clean group leave, an
        open transaction left for the next owner to abort); otherwise SIGTERM as in
        ``down``. ``pause_s`` keeps it down that long before the new start.
        """
        with file_lock(self.config.lock_file):
            state = self._load_state()
            record = state.components.get(name)
            if record is None or record.kind != "service":
                raise StackError(f"{name}: no such service in {self.config.stack_file}")
            if not record.managed or record.pid is None:
                raise StackError(f"{name}: not started by this stack; left alone")
            try:
                table = SERVICES if self.services is None else tuple(self.services)
                spec, index = parse_replica(name, table)
            except KeyError:
                raise StackError(f"{name}: not a service of the stack's table") from None
            if kill:
                stopped = kill_now(record.pid, record.start_ticks)
            else:
                stopped = terminate(
                    record.pid, record.start_ticks, timeout_s=STOP_TIMEOUT_S["service"]
                )
            self._reap(record.pid)
            self.echo(f"{name}: pid {stopped.pid} {stopped.outcome} ({stopped.seconds:.1f}s)")
            if pause_s > 0:
                time.sleep(pause_s)
            deadline = time.monotonic() + timeout_s
            try:
                started = self._spawn_service(spec, index)
                state.components[name] = started
            finally:
                state.save(self.config.stack_file)
            self._wait_healthy([started], deadline)
            return stopped, started

    def _stop(self, record: ComponentRecord) -> Stopped | None:
        if not record.managed or record.pid is None:
            return None
        timeout = STOP_TIMEOUT_S.get(record.kind, 20.0)
        return terminate(record.pid, record.start_ticks, timeout_s=timeout)

    def _report_stray_pid_files(self) -> None:
        """Pid files stack.json does not explain (a crash between spawn and save)."""
        if not self.config.pids_dir.is_dir():
            return
        for pid_file in sorted(self.config.pids_dir.glob("*.pid")):
            try:
                pid = int(pid_file.read_text(encoding="ascii").strip())
            except (OSError, ValueError):
                pid = None
            if is_running(pid):
                # Without the recorded start time we cannot prove it is ours: say so
                # rather than signal a stranger.
                self.echo(f"{pid_file}: pid {pid} is running but unrecorded; left alone")
            else:
                pid_file.unlink(missing_ok=True)
