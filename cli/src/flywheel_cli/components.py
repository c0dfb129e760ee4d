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
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = ["SERVICES", "ServiceSpec", "available_services", "service_by_name"]


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

    def argv(self, python: str) -> list[str]:
        return [python, "-m", self.module]


SERVICES: tuple[ServiceSpec, ...] = (
    # Pipeline order: a consumer starts after the service that feeds it, so the
    # first records it sees are not a backlog built up during start-up.
    # Default ports are the services' own settings defaults, so a service started by
    # hand and one started by the stack land on the same port.
    ServiceSpec("stream-ingest", "stream_ingest", 19101, "FLYWHEEL_INGEST_PORT"),
    ServiceSpec("trainer", "trainer", 19102, "FLYWHEEL_TRAINER_PORT"),
    ServiceSpec("predictor", "predictor", 18080, "FLYWHEEL_PREDICTOR_PORT"),
    ServiceSpec("optimizer", "optimizer", 19104, "FLYWHEEL_OPTIMIZER_PORT"),
    ServiceSpec("alerter", "alerter", 18081, "FLYWHEEL_ALERTER_HTTP_PORT"),
)


def service_by_name(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)


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
