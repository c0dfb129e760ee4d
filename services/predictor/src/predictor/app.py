"""The HTTP API: FastAPI routes over :class:`~predictor.serving.Predictor`.

Responses are serialised straight to JSON bytes (orjson); the pydantic models in
:mod:`predictor.contracts` document them in the OpenAPI schema. Errors are JSON
``{"detail", "field", "reason"}``; a 422 always names the field.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import make_asgi_app
from pydantic import StringConstraints, TypeAdapter, ValidationError

from flywheel.tasks import TASK_NAME_PATTERN
from predictor.auth import AuthError
from predictor.contracts import (
    ErrorBody,
    Prediction,
    PredictionRows,
    PredictRequest,
    ReadinessBody,
    TaskDetail,
    TaskSummary,
)
from predictor.scoring import ServingModel
from predictor.serving import Predictor, Refused

__all__ = ["create_app"]

TaskPath = Annotated[str, Path(pattern=TASK_NAME_PATTERN, max_length=128)]

# The predict route reads its task and ``explain`` itself (FastAPI's parameter
# machinery costs more per request than scoring does); these give the same answers,
# the same 422 messages, and the same OpenAPI parameters as the declared ones would.
_TASK_NAME = re.compile(TASK_NAME_PATTERN)
_TASK_ADAPTER: TypeAdapter[str] = TypeAdapter(
    Annotated[str, StringConstraints(max_length=128, pattern=TASK_NAME_PATTERN)]
)
_BOOL_ADAPTER: TypeAdapter[bool] = TypeAdapter(bool)
_PREDICT_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "task",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "maxLength": 128,
            "pattern": TASK_NAME_PATTERN,
            "title": "Task",
        },
    },
    {
        "name": "explain",
        "in": "query",
        "required": False,
        "description": "Add SHAP contributions",
        "schema": {
            "type": "boolean",
            "description": "Add SHAP contributions",
            "default": False,
            "title": "Explain",
        },
    },
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "No or unknown API key",
        403: "The API key is not scoped to this task",
        404: "No model is served for this task yet",
        413: "The request body is too large",
        422: "A feature is missing, unexpected or of the wrong type (named in `field`)",
        503: "Online features were asked for while Redis is down",
    }.items()
}


# 10,000 rows of a few dozen features fit easily; anything larger is refused unread.
MAX_BODY_BYTES = 32 * 1024 * 1024

_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
}


def _parse(raw: bytes) -> PredictRequest:
    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise Refused(422, f"{field}: {first['msg']}", field, "invalid_field") from exc


def _invalid_param(where: str, adapter: TypeAdapter[Any], value: str) -> Refused:
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        return Refused(422, f"{where}: {exc.errors()[0]['msg']}", where, "invalid_field")
    raise AssertionError(f"{where}: {value!r} is valid")  # pragma: no cover


def _task_param(request: Request) -> str:
    task: str = request.path_params["task"]
    if len(task) > 128 or _TASK_NAME.match(task) is None:
        raise _invalid_param("path.task", _TASK_ADAPTER, task)
    return task


def _explain_param(request: Request) -> bool:
    # Starlette keeps the last of repeated query parameters, as FastAPI's bool does.
    raw = request.query_params.get("explain")
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _invalid_param("query.explain", _BOOL_ADAPTER, raw)


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _api_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


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
        return _json({"detail": str(exc), "field": None, "reason": "unauthorized"}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "<body>"
        message = f"{field}: {first.get('msg', 'invalid')}"
        return _json({"detail": message, "field": field, "reason": "invalid_field"}, 422)


def create_app(predictor: Predictor) -> FastAPI:
    app = FastAPI(
        title="Flywheel predictor",
        version="1",
        description="Low-latency predictions from the champion LightGBM model of each task. "
        "When API keys are configured, send `Authorization: Bearer <key>`.",
    )
    app.mount("/metrics", make_asgi_app(registry=predictor.metrics.registry))
    _install_error_handlers(app)
    metrics = predictor.metrics

    @app.post(
        "/v1/tasks/{task}/predict",
        response_model=Prediction | PredictionRows,
        responses=_ERRORS,
        summary="Score one row (features) or many (rows)",
        openapi_extra={"requestBody": _REQUEST_BODY, "parameters": _PREDICT_PARAMETERS},
    )
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        # Invalid parameters are refused before anything is counted (an arbitrary
        # path must not become a metric label), as FastAPI's own checks were.
        task = _task_param(request)
        explain = _explain_param(request)
        status = 500
        try:
            # Parsed here rather than by FastAPI's body machinery: same model, same
            # errors, a fraction of the per-request cost on the hot path.
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise Refused(
                    413, f"<body>: larger than {MAX_BODY_BYTES} bytes", "<body>", "too_large"
                )
            body = _parse(await request.body())
            model = predictor.model_for(task, _api_key(request))
            explain = explain or body.explain
            if body.features is not None:
                answer = await predictor.predict_one(
                    model,
                    body.features,
                    entity_id=body.entity_id,
                    explain=explain,
                    started=started,
                )
            else:
                answer = await predictor.predict_rows(
                    model,
                    body.rows or [],
                    entity_id=body.entity_id,
                    explain=explain,
                    started=started,
                )
            status = 200
            return _json(answer)
        except (Refused, AuthError) as exc:
            status = exc.status
            raise
        finally:
            predictor.counts.count(status)
            metrics.answered(task, status, time.perf_counter() - started)

    @app.get("/v1/tasks", response_model=list[TaskSummary], responses=_ERRORS)
    async def list_tasks(request: Request) -> Response:
        tasks = predictor.store.tasks()
        if predictor.keyring.enabled:
            tasks = predictor.keyring.visible(_api_key(request), tasks)
        models = [predictor.store.get(name) for name in tasks]
        return _json([_summary(m) for m in models if m is not None])

    @app.get("/v1/tasks/{task}", response_model=TaskDetail, responses=_ERRORS)
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
