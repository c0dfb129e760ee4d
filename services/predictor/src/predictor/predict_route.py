"""``POST /v1/tasks/{task}/predict`` as a bare ASGI endpoint.

FastAPI's middleware stack, routing, dependency solving and response plumbing cost
about as much per request as checking and scoring a row does, so
:class:`~predictor.app.PredictorAPI` hands a request that the declared route would
take straight to :class:`PredictEndpoint`. The route stays declared on the FastAPI
app (same OpenAPI document) and answers through the same endpoint, so both ways give
the same bodies: the same parameter checks and 422 messages (``path.task``,
``query.explain``), the same 401/403/404/413/422/503 bodies, and invalid parameters
are refused before anything is counted (an arbitrary path must not become a metric
label).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from pydantic import StringConstraints, TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from flywheel.tasks import TASK_NAME_PATTERN
from predictor.auth import AuthError
from predictor.contracts import PredictRequest
from predictor.serving import Predictor, Refused

__all__ = [
    "MAX_BODY_BYTES",
    "PREDICT_PARAMETERS",
    "PREDICT_PATH",
    "PREDICT_REQUEST_BODY",
    "PredictEndpoint",
    "api_key_from",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREDICT_PATH = "/v1/tasks/{task}/predict"

# 10,000 rows of a few dozen features fit easily; anything larger is refused unread.
MAX_BODY_BYTES = 32 * 1024 * 1024

# What FastAPI would document for a declared ``task`` path parameter and ``explain``
# query parameter; the endpoint checks them itself, with the same messages.
PREDICT_PARAMETERS: list[dict[str, Any]] = [
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

PREDICT_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
}

_TASK_NAME = re.compile(TASK_NAME_PATTERN)
_TASK_ADAPTER: TypeAdapter[str] = TypeAdapter(
    Annotated[str, StringConstraints(max_length=128, pattern=TASK_NAME_PATTERN)]
)
_BOOL_ADAPTER: TypeAdapter[bool] = TypeAdapter(bool)
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})

_JSON_TYPE = (b"content-type", b"application/json")


def api_key_from(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request presents: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key


def _invalid_param(where: str, adapter: TypeAdapter[Any], value: str) -> Refused:
    # The message pydantic (and so FastAPI) gives for this value.
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        return Refused(422, f"{where}: {exc.errors()[0]['msg']}", where, "invalid_field")
    raise AssertionError(f"{where}: {value!r} is valid")  # pragma: no cover


def _check_task(task: str) -> str:
    if len(task) > 128 or _TASK_NAME.match(task) is None:
        raise _invalid_param("path.task", _TASK_ADAPTER, task)
    return task


def _explain(query_string: bytes) -> bool:
    if not query_string:
        return False
    # As Starlette's QueryParams: latin-1, blank values kept, the last repeat wins.
    raw = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)).get("explain")
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _invalid_param("query.explain", _BOOL_ADAPTER, raw)


def _parse(raw: bytes) -> PredictRequest:
    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise Refused(422, f"{field}: {first['msg']}", field, "invalid_field") from exc


def _too_large() -> Refused:
    return Refused(413, f"<body>: larger than {MAX_BODY_BYTES} bytes", "<body>", "too_large")


async def _read_body(receive: Receive, declared: bytes | None) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # one message: the common case
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:  # undeclared (chunked) bodies are bounded too
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


class PredictEndpoint:
    """Answers predict requests straight from the ASGI scope; see the module docstring."""

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor
        self._metrics = predictor.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send, task: str) -> None:
        status, body = await self.answer(scope, receive, task)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"%d" % len(body)), _JSON_TYPE],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: Scope, receive: Receive, task: str) -> tuple[int, bytes]:
        """The status and JSON body for one predict request (``task`` from the path)."""
        started = time.perf_counter()
        try:
            # Refused before anything is counted: an arbitrary path is not a label.
            task = _check_task(task)
            explain = _explain(scope["query_string"])
        except Refused as exc:
            return exc.status, orjson.dumps(exc.body)
        predictor = self._predictor
        status = 500
        try:
            length = authorization = x_api_key = None
            for name, value in scope["headers"]:
                # The first of repeated headers, as Starlette's Headers.get.
                if name == b"content-length":
                    length = length or value
                elif name == b"authorization":
                    authorization = authorization or value
                elif name == b"x-api-key":
                    x_api_key = x_api_key or value
            body = _parse(await _read_body(receive, length))
            model = predictor.model_for(
                task,
                api_key_from(
                    None if authorization is None else authorization.decode("latin-1"),
                    None if x_api_key is None else x_api_key.decode("latin-1"),
                ),
            )
            explain = explain or body.explain
            entity_id = body.entity_id
            if body.features is not None:
                answer = await predictor.predict_one(
                    model, body.features, entity_id=entity_id, explain=explain, started=started
                )
            else:
                answer = await predictor.predict_rows(
                    model, body.rows or [], entity_id=entity_id, explain=explain, started=started
                )
            status = 200
            return status, orjson.dumps(answer)
        except (Refused, AuthError) as exc:
            status = exc.status
            return status, orjson.dumps(exc.body)
        finally:
            predictor.counts.count(status)
            self._metrics.answered(task, status, time.perf_counter() - started)
