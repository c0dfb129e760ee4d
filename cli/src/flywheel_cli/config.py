"""Where the local stack lives and which ports it uses, read once from the environment.

The CLI is an app, so unlike the library it may read the environment; it does so
only here, in :meth:`StackConfig.from_env`, which takes the mapping explicitly so
tests never depend on the caller's shell.

Variables (all optional):

====================================  ===========================================
``FLYWHEEL_STATE_DIR``                state, pids, logs (default ``<repo>/.flywheel``)
``FLYWHEEL_KAFKA_LIB_DIR``            Kafka jar cache (default ``<repo>/.flywheel/kafka/lib``)
``FLYWHEEL_KAFKA_PORT``               broker listener (19092)
``FLYWHEEL_KAFKA_CONTROLLER_PORT``    KRaft controller listener (19093)
``FLYWHEEL_KAFKA_HEAP_MB``            broker heap, at most 512 (512)
``FLYWHEEL_REDIS_PORT``               redis-server (16379)
``FLYWHEEL_<SERVICE>_PORT``           a service's port, e.g. ``FLYWHEEL_PREDICTOR_PORT``
``FLYWHEEL_TOPIC_PREFIX``             topic namespace, as the services read it
``FLYWHEEL_KAFKA_REPLICATION_FACTOR`` for topics ``up`` creates (1; raise it on a real cluster)
``KAFKA_BOOTSTRAP_SERVERS``           use this cluster; ``up`` starts no broker
``REDIS_URL``                         use this Redis; ``up`` starts no redis-server
``JAVA_HOME``                         the JDK that runs the broker (default: ``java`` on PATH)
====================================  ===========================================

The ``FLYWHEEL_``-prefixed spellings of the last two win, as in the services' settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from flywheel.errors import ConfigError

__all__ = ["LOOPBACK", "StackConfig", "find_repo_root"]

LOOPBACK = "127.0.0.1"
DEFAULT_KAFKA_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_REDIS_PORT = 16379
# The issue caps the broker heap: the stack must fit beside five services on a laptop.
MAX_KAFKA_HEAP_MB = 512
POM_RELATIVE = Path("deploy/local/kafka/pom.xml")


def find_repo_root(start: Path) -> Path | None:
    """The nearest ancestor of ``start`` holding the Kafka pom (the workspace root)."""
    for candidate in (start, *start.parents):
        if (candidate / POM_RELATIVE).is_file():
            return candidate
    return None


def _default_repo_root(cwd: Path) -> Path:
    # An editable install keeps this file inside the repo, which finds the right root
    # even when the CLI is run from elsewhere; the cwd is the fallback for wheels.
    return find_repo_root(Path(__file__).resolve().parent) or find_repo_root(cwd) or cwd


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    return _int(env, name, default, 1, 65535)


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Everything ``flywheel stack`` needs to know about the local deployment."""

    repo_root: Path
    state_dir: Path
    kafka_lib_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    redis_port: int = DEFAULT_REDIS_PORT
    kafka_heap_mb: int = MAX_KAFKA_HEAP_MB
    topic_prefix: str = ""
    replication_factor: int = 1
    # Set when the user points at an existing cluster: then `up` starts no broker.
    external_kafka: str | None = None
    external_redis: str | None = None
    service_ports: Mapping[str, int] = field(default_factory=dict)
    java_home: str | None = None
    # Processes per service (``up --replicas`` / ``--scale``); absent = 1.
    replicas: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, cwd: Path) -> StackConfig:
        """Build the config from ``env`` (normally ``os.environ``)."""
        from flywheel_cli.components import SERVICES

        repo_root = _default_repo_root(cwd)
        state_raw = env.get("FLYWHEEL_STATE_DIR", "").strip()
        state_dir = Path(state_raw).expanduser() if state_raw else repo_root / ".flywheel"
        if not state_dir.is_absolute():
            state_dir = cwd / state_dir
        lib_raw = env.get("FLYWHEEL_KAFKA_LIB_DIR", "").strip()
        # The jar cache is not state: it stays in the repo even when the state folder
        # moves, so a throwaway state dir (tests, benchmarks) still starts warm.
        lib_dir = Path(lib_raw).expanduser() if lib_raw else repo_root / ".flywheel/kafka/lib"
        heap = _int(env, "FLYWHEEL_KAFKA_HEAP_MB", MAX_KAFKA_HEAP_MB, 128, MAX_KAFKA_HEAP_MB)
        config = cls(
            repo_root=repo_root,
            state_dir=state_dir.resolve(),
            kafka_lib_dir=lib_dir.resolve(),
            kafka_port=_port(env, "FLYWHEEL_KAFKA_PORT", DEFAULT_KAFKA_PORT),
            controller_port=_port(env, "FLYWHEEL_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT),
            redis_port=_port(env, "FLYWHEEL_REDIS_PORT", DEFAULT_REDIS_PORT),
            kafka_heap_mb=heap,
            topic_prefix=env.get("FLYWHEEL_TOPIC_PREFIX", "").strip(),
            replication_factor=_int(env, "FLYWHEEL_KAFKA_REPLICATION_FACTOR", 1, 1, 5),
            external_kafka=_first(
                env, "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
            ),
            external_redis=_first(env, "FLYWHEEL_REDIS_URL", "REDIS_URL"),
            service_ports={
                spec.name: _port(env, spec.port_env, spec.default_port) for spec in SERVICES
            },
            java_home=env.get("JAVA_HOME", "").strip() or None,
        )
        config.check_ports()
        return config

    def with_replicas(self, replicas: Mapping[str, int]) -> StackConfig:
        """This config running ``replicas`` processes of the named services."""
        config = replace(self, replicas=dict(replicas))
        config.check_ports()
        return config

    def replica_count(self, service: str) -> int:
        return self.replicas.get(service, 1)

    def check_ports(self) -> None:
        """Refuse two components on one port: the second would fail late and obscurely."""
        from flywheel_cli.components import SERVICES

        owners: dict[int, str] = {}
        claims = [("kafka", self.kafka_port), ("kafka-controller", self.controller_port)]
        claims.append(("redis", self.redis_port))
        claims.extend(self.service_ports.items())
        for spec in SERVICES:
            port = self.service_ports.get(spec.name, spec.default_port)
            claims += [
                (spec.replica_name(i), spec.replica_port(port, i))
                for i in range(2, self.replica_count(spec.name) + 1)
            ]
        for name, port in claims:
            if port in owners:
                raise ConfigError(f"{name} and {owners[port]} both use port {port}")
            owners[port] = name

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"{LOOPBACK}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return self.external_redis or f"redis://{LOOPBACK}:{self.redis_port}/0"

    @property
    def pom_path(self) -> Path:
        return self.repo_root / POM_RELATIVE

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def kafka_data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def redis_dir(self) -> Path:
        return self.state_dir / "redis"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "stack.lock"
