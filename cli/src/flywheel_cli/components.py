"""The table of Flywheel services the local stack runs, in start order.

Each service is its own process, ``python -m <module>``, started only once its
package has a ``__main__`` module (services land issue by issue). ``up`` gives each
one the cluster it started (``FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS``,
``FLYWHEEL_REDIS_URL``) and its port as ``FLYWHEEL_<SERVICE>_PORT`` (the
``<service>_port`` field of its settings, e.g. ``FLYWHEEL_PREDICTOR_PORT``); the same
variable in the operator's shell moves the service. A service should answer
``GET /healthz`` on that port (``flywheel.metrics.serve_metrics`` does, since
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
    health_path: str | None = "/healthz"
    # Extra variables the stack always sets for this service.
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def port_env(self) -> str:
        """The variable carrying the service's port, to the service and from the operator."""
        return "FLYWHEEL_" + self.name.upper().replace("-", "_") + "_PORT"

    def argv(self, python: str) -> list[str]:
        return [python, "-m", self.module]


SERVICES: tuple[ServiceSpec, ...] = (
    # Pipeline order: a consumer starts after the service that feeds it, so the
    # first records it sees are not a backlog built up during start-up.
    ServiceSpec("stream-ingest", "stream_ingest", 18081),
    ServiceSpec("trainer", "trainer", 18082),
    ServiceSpec("predictor", "predictor", 18080),
    ServiceSpec("optimizer", "optimizer", 18083),
    ServiceSpec("alerter", "alerter", 18084),
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
