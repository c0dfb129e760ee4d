"""The alerter's HTTP API (port 18081 by default).

* ``GET /healthz`` and ``GET /metrics`` - open.
* ``GET|POST /api/v1/silences``, ``DELETE /api/v1/silences/{id}``,
  ``GET /api/v1/alerts``, ``POST /api/v1/receive/{alertmanager|grafana}`` - need the
  API key as ``Authorization: Bearer <key>`` (or ``X-API-Key``). Only the key's
  SHA-256 is held; the presented key is hashed and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerter.engine import Engine
from alerter.inbound import InboundError, to_alerts
from alerter.matchers import parse_matcher
from alerter.routing import parse_duration
from alerter.state import Silence
from flywheel.events import Alert, UtcDatetime

__all__ = ["SilenceRequest", "build_silence", "create_app"]

INBOUND = Counter(
    "flywheel_alerter_inbound_alerts_total",
    "Alerts accepted over the webhook endpoints, by sender.",
    ["source"],
)

Publish = Callable[[list[Alert]], Awaitable[None]]


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[str] = Field(min_length=1, max_length=64)
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    duration: str | None = None
    created_by: str = Field(min_length=1, max_length=128)
    comment: str = Field(default="", max_length=1_000)


def build_silence(request: SilenceRequest, now: datetime) -> Silence:
    """Validate a silence request; HTTP 422 names the field that is wrong."""
    for i, text in enumerate(request.matchers):
        try:
            parse_matcher(text)
        except ValueError as exc:
            raise HTTPException(422, f"matchers.{i}: {exc}") from exc
    starts = request.starts_at or now
    if request.ends_at is not None and request.duration is not None:
        raise HTTPException(422, "ends_at/duration: give one, not both")
    if request.ends_at is not None:
        ends = request.ends_at
    else:
        try:
            ends = starts + timedelta(seconds=parse_duration(request.duration or "1h"))
        except ValueError as exc:
            raise HTTPException(422, f"duration: {exc}") from exc
    if ends <= starts:
        raise HTTPException(422, "ends_at: must be after starts_at")
    return Silence(
        id=secrets.token_hex(16),
        matchers=request.matchers,
        starts_at=starts,
        ends_at=ends,
        created_by=request.created_by,
        comment=request.comment,
        created_at=now,
    )


def create_app(
    engine: Engine,
    publish: Publish,
    api_key_digest: bytes | None,
    now: Callable[[], datetime],
) -> FastAPI:
    app = FastAPI(title="Flywheel alerter", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def authenticated(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> None:
        if api_key_digest is None:
            raise HTTPException(
                503, "authenticated endpoints are off: set FLYWHEEL_ALERTER_API_KEY(_FILE)"
            )
        presented = x_api_key
        if authorization and authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        digest = hashlib.sha256((presented or "").encode()).digest()
        if not presented or not hmac.compare_digest(digest, api_key_digest):
            raise HTTPException(401, "missing or wrong API key", {"WWW-Authenticate": "Bearer"})

    auth = [Depends(authenticated)]
    # What `authenticated` answers, declared so the OpenAPI document (and the README
    # generated from it) lists it; FastAPI cannot see inside a dependency.
    refusals: dict[int | str, dict[str, Any]] = {
        401: {"description": "No or wrong API key"},
        503: {"description": "No API key is configured: the endpoint is off"},
    }

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "alerts": len(engine.dispatcher.alerts),
            "groups": len(engine.dispatcher.groups),
            "in_flight": engine.in_flight,
        }

    @app.get("/api/v1/alerts", dependencies=auth, responses=refusals)
    async def list_alerts() -> list[dict[str, Any]]:
        at = now()
        return [
            {**a.model_dump(mode="json"), "muted": engine.dispatcher.muted(a, at)}
            for a in engine.dispatcher.alerts.values()
        ]

    @app.get("/api/v1/silences", dependencies=auth, responses=refusals)
    async def list_silences() -> list[dict[str, Any]]:
        at = now()
        return [
            {**s.model_dump(mode="json"), "active": s.active(at)}
            for s in engine.dispatcher.silences.all()
        ]

    @app.post("/api/v1/silences", dependencies=auth, status_code=201, responses=refusals)
    async def create_silence(request: SilenceRequest) -> dict[str, Any]:
        silence = build_silence(request, now())
        await engine.put_silence(silence)
        return silence.model_dump(mode="json")

    @app.delete(
        "/api/v1/silences/{silence_id}",
        dependencies=auth,
        responses={**refusals, 404: {"description": "No such silence"}},
    )
    async def expire_silence(silence_id: str) -> dict[str, Any]:
        silence = engine.dispatcher.silences.get(silence_id)
        if silence is None:
            raise HTTPException(404, f"silence {silence_id} not found")
        at = now()
        if silence.ends_at > at:
            # Expired, not deleted: the record stays for `flywheel alerts silences`.
            silence = silence.model_copy(update={"ends_at": max(at, silence.starts_at)})
            await engine.put_silence(silence)
        return silence.model_dump(mode="json")

    async def receive(request: Request, source: Literal["alertmanager", "grafana"]) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "<root>: body is not JSON"}, status_code=400)
        try:
            alerts = to_alerts(body, source=source)
        except InboundError as exc:
            return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)
        await publish(alerts)
        INBOUND.labels(source).inc(len(alerts))
        return JSONResponse(
            {"accepted": len(alerts), "fingerprints": [a.fingerprint for a in alerts]},
            status_code=202,
        )

    inbound = {**refusals, 400: {"description": "The body is not JSON"}}

    @app.post("/api/v1/receive/alertmanager", dependencies=auth, status_code=202, responses=inbound)
    async def receive_alertmanager(request: Request) -> Any:
        return await receive(request, "alertmanager")

    @app.post("/api/v1/receive/grafana", dependencies=auth, status_code=202, responses=inbound)
    async def receive_grafana(request: Request) -> Any:
        return await receive(request, "grafana")

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
