"""The predict route served ahead of FastAPI answers exactly as the declared route does."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from predictor import predict_route
from predictor.app import PredictorAPI
from tests.unit.predictor.fakes import make_predictor
from tests.unit.predictor.modelkit import ROW, train_version

TASK = "demo.task"
URL = f"/v1/tasks/{TASK}/predict"

# (method, url, body, headers): successes, every kind of refusal, and a fall-through.
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", URL, orjson.dumps({"features": ROW}), {}),
    ("POST", URL + "?explain=yes", orjson.dumps({"features": ROW}), {}),
    ("POST", URL + "?explain=0&explain=on", orjson.dumps({"features": ROW}), {}),
    ("POST", URL, orjson.dumps({"rows": [ROW, {**ROW, "steps": 3}]}), {}),
    ("POST", URL, orjson.dumps({"features": {**ROW, "steps": "many"}}), {}),
    ("POST", URL, orjson.dumps({"features": ROW, "rows": [ROW]}), {}),
    ("POST", URL, b'{"features": ', {}),
    ("POST", URL, b"", {}),
    ("POST", URL + "?explain=maybe", orjson.dumps({"features": ROW}), {}),
    ("POST", "/v1/tasks/Bad%20Name/predict", orjson.dumps({"features": ROW}), {}),
    ("POST", "/v1/tasks/no.such/predict", orjson.dumps({"features": ROW}), {}),
    ("POST", URL, orjson.dumps({"features": ROW}), {"content-length": str(64 << 20)}),
    ("GET", URL, b"", {}),
]


def _comparable(response: httpx.Response) -> tuple[int, str | None, Any]:
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body.pop("prediction_id", None)
        for row in body.get("predictions", ()):
            row.pop("prediction_id")
    return response.status_code, response.headers.get("content-type"), body


async def _answers(app: Any) -> list[tuple[int, str | None, Any]]:
    transport = httpx.ASGITransport(app=app)
    answers = []
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        for method, url, body, headers in REQUESTS:
            request = client.build_request(method, url, content=body, headers=headers)
            answers.append(_comparable(await client.send(request)))
    return answers


async def test_served_ahead_of_fastapi_as_the_declared_route_would() -> None:
    fast_predictor, fast = await make_predictor(train_version(TASK))
    declared_predictor, declared = await make_predictor(train_version(TASK))

    async def through_fastapi(scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI's own dispatch: middleware, router, the declared route.
        await FastAPI.__call__(declared, scope, receive, send)

    assert isinstance(fast, PredictorAPI)
    fast_answers = await _answers(fast)
    assert fast_answers == await _answers(through_fastapi)
    statuses = [status for status, _, _ in fast_answers]
    assert statuses == [200, 200, 200, 200, 422, 422, 422, 422, 422, 422, 404, 413, 405]
    assert fast_answers[2][2]["contributions"]  # the last of repeated parameters wins
    # Invalid parameters are not counted; everything else is, the same way.
    assert fast_predictor.counts.requests == declared_predictor.counts.requests == 10


async def _call(app: Any, messages: list[Message]) -> tuple[int, dict[str, Any]]:
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],  # no content-length
    }
    await app(scope, receive, send)
    start, body = sent
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    return start["status"], orjson.loads(body["body"])


async def test_a_body_in_several_messages_is_joined_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, app = await make_predictor(train_version(TASK))
    raw = orjson.dumps({"features": ROW})
    parts = [raw[:10], raw[10:20], raw[20:]]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    status, body = await _call(app, messages)
    assert status == 200 and 0 < body["score"] < 1
    # A body without Content-Length is refused once it outgrows the limit.
    monkeypatch.setattr(predict_route, "MAX_BODY_BYTES", 15)
    status, body = await _call(app, messages)
    assert status == 413
    assert body == {
        "detail": "<body>: larger than 15 bytes",
        "field": "<body>",
        "reason": "too_large",
    }
