"""The table of Flywheel services the local stack runs, in start order.

Each service is its own process, ``python -m <module>``, started only once its
package has a ``__main__`` module (services land issue by issue). ``up`` gives each
one the cluster it started (``FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS``,
``FLYWHEEL_REDIS_URL``) and its port in ``port_env``, the variable its own settings
read (``FLYWHEEL_PREDICTOR_PORT`` for ``predictor_port``); the same variable in the
operator's shell moves the service. A service should answer ``GET /healthz`` on
that port (``flywheel.metrics.serve_metrics`` does, since
prometheus-client answers every path); one with ``health_path=None`` is judged by its
process being alive.

Adding a service is one row here; nothing else in the CLI names services.

Replicas: a ``scalable`` service may run as several processes (``up --replicas 2``).
Replica 1 is the service itself, unchanged; replica ``n`` is named ``<name>-<n>``,
listens on the service's port + 100 x (n - 1) and has ``FLYWHEEL_INSTANCE_ID`` set to
its name. Every replica keeps the service's consumer group and transactional-id
stem, which is what makes them share the work (docs/scaling.md).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "MAX_REPLICAS",
    "REPLICA_PORT_STEP",
    "SERVICES",
    "ServiceSpec",
    "available_services",
    "parse_replica",
    "parse_scale",
    "service_by_name",
]

# Replica n of a service listens on its port + REPLICA_PORT_STEP x (n - 1).
REPLICA_PORT_STEP = 100
MAX_REPLICAS = 9


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One row of the service table."""

    name: str
    module: str
    default_port: int
    # The variable carrying the port, to the service and from the operator; it must
    # match the port field of the service's Settings (env prefix FLYWHEEL_).
    port_env: str
    health_path: str | None = "/healthz"
    # Extra variables the stack always sets for this service.
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Answers 2xx only once the service can do its job (the predictor: models loaded);
    # the stack waits on it when set, so a restarted replica is not "up" while empty.
    ready_path: str | None = None
    # Whether several replicas may share the work (one consumer group, no singleton).
    scalable: bool = False

    def argv(self, python: str) -> list[str]:
        return [python, "-m", self.module]

    @property
    def probe_path(self) -> str | None:
        return self.ready_path or self.health_path

    def replica_name(self, index: int) -> str:
        return self.name if index == 1 else f"{self.name}-{index}"

    def replica_port(self, port: int, index: int) -> int:
        """Replica ``index``'s port, from replica 1's ``port``."""
        return port + REPLICA_PORT_STEP * (index - 1)


SERVICES: tuple[ServiceSpec, ...] = (
    # Pipeline order: a consumer starts after the service that feeds it, so the
    # first records it sees are not a backlog built up during start-up.
    # Default ports are the services' own settings defaults, so a service started by
    # hand and one started by the stack land on the same port.
    # The optimizer and the alerter keep state for the whole deployment (windows,
    # silences, notification log) and run once; the other three scale out.
    ServiceSpec("stream-ingest", "stream_ingest", 19101, "FLYWHEEL_INGEST_PORT", scalable=True),
    ServiceSpec("trainer", "trainer", 19102, "FLYWHEEL_TRAINER_PORT", scalable=True),
    ServiceSpec(
        "predictor",
        "predictor",
        18080,
        "FLYWHEEL_PREDICTOR_PORT",
        ready_path="/readyz",
        scalable=True,
    ),
    ServiceSpec("optimizer", "optimizer", 19104, "FLYWHEEL_OPTIMIZER_PORT"),
    ServiceSpec("alerter", "alerter", 18081, "FLYWHEEL_ALERTER_HTTP_PORT"),
)


def service_by_name(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def parse_replica(
    name: str, services: tuple[ServiceSpec, ...] = SERVICES
) -> tuple[ServiceSpec, int]:
    """``"predictor-2"`` -> (the predictor's spec, 2); ``"trainer"`` -> (trainer, 1)."""
    for spec in services:
        if name == spec.name:
            return spec, 1
        suffix = name.removeprefix(f"{spec.name}-")
        if suffix != name and suffix.isdigit() and 2 <= int(suffix) <= MAX_REPLICAS:
            return spec, int(suffix)
    raise KeyError(name)


def parse_scale(text: str, services: tuple[ServiceSpec, ...] = SERVICES) -> dict[str, int]:
    """``"stream-ingest=2,predictor=3"`` -> replicas per service; ValueError names the part."""
    scale: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or not count.strip().isdigit():
            raise ValueError(f"--scale: {part!r} is not <service>=<replicas>")
        spec = next((s for s in services if s.name == name), None)
        if spec is None:
            raise ValueError(f"--scale: unknown service {name!r}")
        replicas = int(count)
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"--scale: {name}={replicas} is outside 1..{MAX_REPLICAS}")
        if replicas > 1 and not spec.scalable:
            raise ValueError(f"--scale: {name} runs once per deployment and cannot be scaled")
        scale[name] = replicas
    return scale


def has_main_module(module: str) -> bool:
    """Whether ``python -m module`` would run, without importing the package.

    ``find_spec`` on a top-level package only locates it; importing it could run
    half-written service code just to ask whether it exists.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(loc) / "__main__.py").is_file() for loc in spec.submodule_search_locations)


def available_services(services: tuple[ServiceSpec, ...] = SERVICES) -> list[ServiceSpec]:
    """The services whose package can be run today."""
    return [spec for spec in services if has_main_module(spec.module)]
