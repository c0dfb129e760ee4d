"""Prometheus helpers: a ``/metrics`` endpoint for services that have no HTTP server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import REGISTRY

__all__ = ["serve_metrics"]


def serve_metrics(
    port: int, *, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> None:
    """Expose ``registry`` over HTTP in a daemon thread.

    prometheus-client answers every path with the metrics, so ``/healthz`` doubles
    as a liveness probe for the stack's status check.

    Services with a FastAPI app mount ``prometheus_client.make_asgi_app()`` instead.
    """
    start_http_server(port, addr=host, registry=registry)
