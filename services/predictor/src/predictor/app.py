"""The HTTP API: FastAPI routes over :class:`~predictor.serving.Predictor`.

Responses are serialised straight to JSON bytes (orjson); the pydantic models in
:mod:`predictor.contracts` document them in the OpenAPI schema. Errors are JSON
``{"detail", "field", "reason"}``; a 422 always names the field.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import make_asgi_app
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from flywheel.tasks import TASK_NAME_PATTERN
from predictor.auth import AuthError
from predictor.contracts import (
    ErrorBody,
    Prediction,
    PredictionRows,
    ReadinessBody,
    TaskDetail,
    TaskSummary,
)
from predictor.predict_route import (
    PREDICT_PARAMETERS,
    PREDICT_PATH,
    PREDICT_REQUEST_BODY,
    PredictEndpoint,
    api_key_from,
)
from predictor.scoring import ServingModel
from predictor.serving import Predictor, Refused

__all__ = ["PredictorAPI", "create_app"]

TaskPath = Annotated[str, Path(pattern=TASK_NAME_PATTERN, max_length=128)]

_ERROR_TEXT: dict[int, str] = {
    401: "No or unknown API key",
    403: "The API key is not scoped to this task",
    404: "No model is served for this task yet (`reason: no_model`), or the task was "
    "deleted (`reason: task_deleted`)",
    413: "The request body is too large",
    422: "A feature is missing, unexpected or of the wrong type (named in `field`)",
    503: "The predictor is still loading champions (`reason: starting`; try another "
    "replica), or online features were asked for while Redis is down",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    # Each route documents only the errors it can answer, so clients and generated
    # stubs do not handle statuses that never come.
    return {code: {"model": ErrorBody, "description": _ERROR_TEXT[code]} for code in codes}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _api_key(request: Request) -> str | None:
    return api_key_from(request.headers.get("authorization"), request.headers.get("x-api-key"))


def _summary(model: ServingModel) -> dict[str, Any]:
    r = model.record
    return {
        "task": r.task,
        "model_version": r.version,
        "objective": r.objective.value,
        "events_trained": r.events_trained,
        "trees": r.trees,
    }


def _detail(model: ServingModel) -> dict[str, Any]:
    r = model.record
    return {
        **_summary(model),
        "model_sha256": r.model_sha256,
        "created_at": r.created_at.isoformat(),
        "strategy": r.strategy,
        "metrics": r.metrics,
        "feature_schema": [s.model_dump(mode="json") for s in r.feature_schema],
        "category_mappings": r.category_mappings,
        "label_classes": r.label_classes,
        "calibration": str(r.calibration.get("method", "none")),
    }


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return _json(exc.body, exc.status)

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> Response:
        return _json(exc.body, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "<body>"
        message = f"{field}: {first.get('msg', 'invalid')}"
        return _json({"detail": message, "field": field, "reason": "invalid_field"}, 422)


class PredictorAPI(FastAPI):
    """The predictor's FastAPI app, with the predict route served ahead of FastAPI.

    A request the declared predict route would take (same route, same match) goes
    straight to :class:`~predictor.predict_route.PredictEndpoint`, skipping the
    middleware stack and the router; everything else is FastAPI's as usual.
    """

    predict_route: BaseRoute | None = None
    predict_endpoint: PredictEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, endpoint = self.predict_route, self.predict_endpoint
        if scope["type"] == "http" and route is not None and endpoint is not None:
            match, child = route.matches(scope)
            if match is Match.FULL:
                await endpoint(scope, receive, send, child["path_params"]["task"])
                return
        await super().__call__(scope, receive, send)


def create_app(predictor: Predictor) -> PredictorAPI:
    app = PredictorAPI(
        title="Flywheel predictor",
        version="1",
        description="Low-latency predictions from the champion LightGBM model of each task. "
        "When API keys are configured, send `Authorization: Bearer <key>`.",
    )
    app.mount("/metrics", make_asgi_app(registry=predictor.metrics.registry))
    _install_error_handlers(app)
    endpoint = PredictEndpoint(predictor)

    @app.post(
        PREDICT_PATH,
        response_model=Prediction | PredictionRows,
        responses=_errors(401, 403, 404, 413, 422, 503),
        summary="Score one row (features) or many (rows)",
        openapi_extra={"requestBody": PREDICT_REQUEST_BODY, "parameters": PREDICT_PARAMETERS},
    )
    async def predict(request: Request) -> Response:
        # Declared for the OpenAPI document; PredictorAPI serves these requests itself
        # through the same endpoint, so this only runs if the route is reached otherwise.
        status, body = await endpoint.answer(
            request.scope, request.receive, request.path_params["task"]
        )
        return Response(body, status_code=status, media_type="application/json")

    app.predict_route = next(
        r for r in app.router.routes if isinstance(r, APIRoute) and r.path == PREDICT_PATH
    )
    app.predict_endpoint = endpoint

    @app.get("/v1/tasks", response_model=list[TaskSummary], responses=_errors(401))
    async def list_tasks(request: Request) -> Response:
        tasks = predictor.store.tasks()
        if predictor.keyring.enabled:
            tasks = predictor.keyring.visible(_api_key(request), tasks)
        models = [predictor.store.get(name) for name in tasks]
        return _json([_summary(m) for m in models if m is not None])

    @app.get(
        "/v1/tasks/{task}", response_model=TaskDetail, responses=_errors(401, 403, 404, 422, 503)
    )
    async def show_task(task: TaskPath, request: Request) -> Response:
        return _json(_detail(predictor.model_for(task, _api_key(request))))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=ReadinessBody, responses={503: {"model": ReadinessBody}})
    async def readyz() -> JSONResponse:
        up = predictor.gate.up
        if not predictor.started:
            status, code = "starting", 503
        else:
            # Degraded still answers 200: loaded models keep serving without Redis.
            status, code = ("ready" if up else "degraded"), 200
        body = {"status": status, "redis": up, "models": len(predictor.store.tasks())}
        return JSONResponse(body, code)

    return app
