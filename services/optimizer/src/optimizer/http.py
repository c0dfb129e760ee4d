"""The optimizer's HTTP surface: health, Prometheus metrics, recommendations, alerts."""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from flywheel.events import Alert
from optimizer.advice import Recommendation
from optimizer.tracker import MetricSample

__all__ = ["OptimizerView", "build_app"]


class OptimizerView(Protocol):
    """What the HTTP layer reads from the running service."""

    registry: CollectorRegistry

    def healthy(self) -> tuple[bool, dict[str, Any]]: ...

    def recommendations(self) -> list[Recommendation]: ...

    def firing_alerts(self) -> list[Alert]: ...

    def samples(self) -> list[MetricSample]: ...


def build_app(view: OptimizerView) -> FastAPI:
    app = FastAPI(title="flywheel optimizer", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        ok, detail = view.healthy()
        return JSONResponse(
            {"status": "ok" if ok else "starting", **detail}, status_code=200 if ok else 503
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(view.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/recommendations")
    def recommendations() -> dict[str, Any]:
        items = view.recommendations()
        return {"count": len(items), "recommendations": [r.model_dump(mode="json") for r in items]}

    @app.get("/v1/alerts")
    def alerts() -> dict[str, Any]:
        firing = view.firing_alerts()
        return {"count": len(firing), "alerts": [a.model_dump(mode="json") for a in firing]}

    @app.get("/v1/metrics")
    def window_metrics(
        task: str | None = Query(default=None, max_length=128),
        window: str | None = Query(default=None, pattern="^(1m|5m|1h)$"),
    ) -> dict[str, Any]:
        rows = [
            {
                "name": s.name,
                "window": s.window,
                "value": s.value,
                "task": s.task,
                "service": s.service,
                "labels": s.labels,
                "samples": s.samples,
            }
            for s in view.samples()
            if (task is None or s.task == task) and (window is None or s.window == window)
        ]
        return {"count": len(rows), "metrics": rows}

    return app
