"""The HTTP API section: every route of the predictor and the alerter, from the
OpenAPI document each FastAPI app builds (the same one the predictor serves at
``/openapi.json``), never from the route implementations.

The apps are built from their real parts, none of which connects to anything until
started: the generator needs no Kafka, no Redis and no network.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount

from alerter.api import create_app as alerter_app
from alerter.clock import SystemClock
from alerter.delivery import Deliverer
from alerter.engine import Engine
from alerter.grouping import Dispatcher
from alerter.journal import MemoryJournal
from alerter.muting import Inhibitor, SilenceStore
from alerter.routing import default_config
from flywheel.events import Alert
from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig, connect_redis
from predictor.app import create_app as predictor_app
from predictor.auth import ApiKeyring
from predictor.cache import PredictionCache, RedisGate
from predictor.keys import RedisKeys
from predictor.metrics import PredictorMetrics
from predictor.online import EntityStore
from predictor.prediction_log import PredictionLogSender
from predictor.serving import Predictor
from predictor.sources import CachedModelSource
from predictor.store import ModelStore
from tools.docgen.markdown import code, table

__all__ = ["apps", "openapi_documents", "render_http_api"]

_METHODS = ("get", "post", "put", "patch", "delete")


def _predictor() -> FastAPI:
    metrics = PredictorMetrics()
    # A lazy client: it would connect on its first command, and the docs send none.
    redis = connect_redis(RedisConfig())
    gate = RedisGate(redis, metrics, retry_s=1.0)
    keys = RedisKeys()
    predictor = Predictor(
        store=ModelStore(CachedModelSource(redis, KafkaConfig(), key_prefix=keys.prefix), metrics),
        cache=PredictionCache(gate, metrics, ttl_s=60),
        entities=EntityStore(gate, keys),
        log=PredictionLogSender(None, "predictions.log", metrics, max_queue=100),
        keyring=ApiKeyring.open(),
        gate=gate,
        metrics=metrics,
        keys=keys,
        max_rows=1,
    )
    return predictor_app(predictor)


def _alerter() -> FastAPI:
    config = default_config()
    clock = SystemClock()
    journal = MemoryJournal()
    dispatcher = Dispatcher(config.routing_tree(), SilenceStore(), Inhibitor(config.inhibit_rules))
    engine = Engine(dispatcher, Deliverer({}, journal, clock), journal, clock)

    async def publish(_: list[Alert]) -> None:
        return None

    def now() -> datetime:
        return datetime.now(UTC)

    return alerter_app(engine, publish, None, now)


def apps() -> dict[str, FastAPI]:
    return {"predictor": _predictor(), "alerter": _alerter()}


def openapi_documents(built: dict[str, FastAPI]) -> dict[str, str]:
    """``openapi-<service>.json`` file name -> the document, stable across runs."""
    return {
        f"openapi-{name}.json": json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
        for name, app in built.items()
    }


def _body(operation: dict[str, Any]) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return _schema_name(schema)


def _schema_name(schema: dict[str, Any]) -> str:
    # FastAPI titles inline schemas after the operation ("Response List Tasks V1 ..."):
    # noise in a table, so only named models and plain JSON types are shown.
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    title = str(schema.get("title", ""))
    if title and " " not in title:
        return title  # a model inlined by hand, e.g. the predict request body
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_schema_name(s) for s in schema[key])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}".strip()
    return str(schema.get("type", ""))


def _responses(operation: dict[str, Any]) -> str:
    parts = []
    for status, response in sorted(operation.get("responses", {}).items()):
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        name = _schema_name(schema)
        generic = name in ("", "ErrorBody", "HTTPValidationError") or status.startswith(("4", "5"))
        parts.append(status if generic else f"{status} {name}")
    return ", ".join(parts)


def _auth(operation: dict[str, Any]) -> str:
    headers = {p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"}
    if headers & {"authorization", "x-api-key"}:
        return "API key"
    if "401" in operation.get("responses", {}):
        return "API key, if configured"
    return ""


def render_http_api(built: dict[str, FastAPI]) -> str:
    out = []
    for name, app in built.items():
        document = app.openapi()
        rows = []
        for path, item in document["paths"].items():
            for method in _METHODS:
                if method in item:
                    operation = item[method]
                    rows.append(
                        [
                            method.upper(),
                            code(path),
                            operation.get("summary", ""),
                            _body(operation),
                            _responses(operation),
                            _auth(operation),
                        ]
                    )
        for route in app.routes:
            # Mounted ASGI apps (Prometheus) are outside the OpenAPI document.
            if isinstance(route, Mount):
                rows.append(["GET", code(route.path), "Prometheus metrics", "", "200", ""])
        link = f"[openapi-{name}.json](docs/schemas/openapi-{name}.json)"
        out.append(f"**{name}** ({document['info']['title']}; {link}):\n")
        out.append(table(["method", "path", "summary", "request body", "responses", "auth"], rows))
    return "\n".join(out)
