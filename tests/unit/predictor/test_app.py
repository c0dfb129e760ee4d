from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from flywheel.tasks import Objective
from predictor.auth import ApiKey, ApiKeyring, hash_key
from tests.unit.predictor.fakes import FakeProducer, FakeRedis, make_predictor, sample
from tests.unit.predictor.modelkit import ROW, train_version

TASK = "demo.task"


async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        yield client


@pytest.fixture
async def redis() -> FakeRedis:
    return FakeRedis()


@pytest.fixture
async def served(redis: FakeRedis) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    predictor, app = await make_predictor(train_version(TASK), redis=redis)
    async for client in _client(app):
        yield predictor, client


async def test_single_row_prediction(served: tuple[Any, httpx.AsyncClient]) -> None:
    predictor, client = served
    response = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
    assert response.status_code == 200
    body = response.json()
    assert body["task"] == TASK
    assert body["model_version"] == 1
    assert len(body["prediction_id"]) == 32
    assert 0 < body["score"] < 1
    assert 0.5 <= body["confidence"] <= 1
    assert "contributions" not in body
    assert predictor.log.pending == 1


async def test_rows_give_one_prediction_each(served: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = served
    rows = [ROW, {**ROW, "steps": 30}, {**ROW, "agent": "critic"}]
    response = await client.post(f"/v1/tasks/{TASK}/predict", json={"rows": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == 1
    assert len(body["predictions"]) == 3
    assert len({p["prediction_id"] for p in body["predictions"]}) == 3


async def test_explain_adds_contributions(served: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = served
    response = await client.post(f"/v1/tasks/{TASK}/predict?explain=true", json={"features": ROW})
    assert set(response.json()["contributions"]) == {"steps", "retries", "agent", "cached", "bias"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"features": {k: v for k, v in ROW.items() if k != "retries"}}, "features.retries"),
        ({"features": {**ROW, "steps": "many"}}, "features.steps"),
        ({"features": {**ROW, "colour": "red"}}, "features.colour"),
        ({"rows": [ROW, {**ROW, "agent": None}]}, "rows.1.agent"),
        ({"features": ROW, "rows": [ROW]}, "<body>"),
        ({"features": {**ROW, "steps": [1]}}, "features.steps"),
    ],
)
async def test_422_names_the_feature(
    served: tuple[Any, httpx.AsyncClient], payload: dict[str, Any], field: str
) -> None:
    _, client = served
    response = await client.post(f"/v1/tasks/{TASK}/predict", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == field
    assert field in body["detail"]


async def test_non_finite_number_is_a_422(served: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = served
    raw = orjson.dumps({"features": {**ROW, "retries": 0.5}}).replace(b"0.5", b"1e999")
    response = await client.post(
        f"/v1/tasks/{TASK}/predict", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "features.retries"


async def test_unknown_task_is_404(served: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = served
    response = await client.post("/v1/tasks/other.task/predict", json={"features": ROW})
    assert response.status_code == 404
    assert response.json()["reason"] == "no_model"


async def test_task_listing_and_detail(served: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = served
    listing = (await client.get("/v1/tasks")).json()
    assert [t["task"] for t in listing] == [TASK]
    detail = (await client.get(f"/v1/tasks/{TASK}")).json()
    assert detail["model_version"] == 1
    assert detail["metrics"] == {"auc": 0.9, "log_loss": 0.3}
    assert [f["name"] for f in detail["feature_schema"]] == ["steps", "retries", "agent", "cached"]
    assert detail["category_mappings"] == {"agent": ["planner", "coder", "critic"]}


async def test_second_identical_request_is_a_cache_hit(
    served: tuple[Any, httpx.AsyncClient],
) -> None:
    predictor, client = served
    first = (await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})).json()
    await predictor.cache.flush()
    reordered = dict(reversed(list(ROW.items())))
    second = (await client.post(f"/v1/tasks/{TASK}/predict", json={"features": reordered})).json()
    assert first["cached"] is False
    assert second["cached"] is True
    assert second["score"] == first["score"]
    assert second["prediction_id"] != first["prediction_id"]
    assert sample(predictor.metrics, "flywheel_predictor_cache_total", {"result": "hit"}) == 1


async def test_online_features_are_joined_and_request_values_win(
    served: tuple[Any, httpx.AsyncClient], redis: FakeRedis
) -> None:
    _, client = served
    stored = {"steps": 3, "retries": 2.5, "agent": "planner", "retired_feature": 1}
    redis.data[f"t:entity:{TASK}:user-1"] = orjson.dumps({"features": stored})
    joined = await client.post(
        f"/v1/tasks/{TASK}/predict", json={"features": {"steps": 12}, "entity_id": "user-1"}
    )
    direct = await client.post(
        f"/v1/tasks/{TASK}/predict",
        json={"features": {"steps": 12, "retries": 2.5, "agent": "planner"}},
    )
    assert joined.status_code == 200
    assert joined.json()["score"] == direct.json()["score"]


async def test_redis_down_keeps_serving_and_reports_degraded(
    served: tuple[Any, httpx.AsyncClient], redis: FakeRedis
) -> None:
    predictor, client = served
    assert (await client.get("/readyz")).json()["status"] == "ready"
    redis.down = True
    for _ in range(3):
        response = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
        assert response.status_code == 200
    readiness = await client.get("/readyz")
    assert readiness.status_code == 200
    assert readiness.json() == {"status": "degraded", "redis": False, "models": 1}
    # Online features need Redis: that request is refused, naming the cause.
    entity = await client.post(
        f"/v1/tasks/{TASK}/predict", json={"features": ROW, "entity_id": "user-1"}
    )
    assert entity.status_code == 503
    assert entity.json()["reason"] == "online_features_unavailable"
    redis.down = False
    assert await predictor.gate.check()
    assert (await client.get("/readyz")).json()["status"] == "ready"


async def test_metrics_endpoint_exports_requests(served: tuple[Any, httpx.AsyncClient]) -> None:
    _, client = served
    await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
    text = (await client.get("/metrics/")).text
    assert f'flywheel_predictor_requests_total{{status="200",task="{TASK}"}} 1.0' in text


async def test_api_keys_401_and_403() -> None:
    good, other = "k" * 32, "o" * 32
    keyring = ApiKeyring(
        [
            ApiKey("demo", bytes.fromhex(hash_key(good)), ("demo.*",)),
            ApiKey("other", bytes.fromhex(hash_key(other)), ("other.*",)),
        ]
    )
    _, app = await make_predictor(train_version(TASK), keyring=keyring)
    async for client in _client(app):
        url = f"/v1/tasks/{TASK}/predict"
        assert (await client.post(url, json={"features": ROW})).status_code == 401
        bad = {"authorization": "Bearer " + "x" * 32}
        assert (await client.post(url, json={"features": ROW}, headers=bad)).status_code == 401
        scoped = {"authorization": f"Bearer {other}"}
        assert (await client.post(url, json={"features": ROW}, headers=scoped)).status_code == 403
        ok = await client.post(url, json={"features": ROW}, headers={"x-api-key": good})
        assert ok.status_code == 200
        listing = await client.get("/v1/tasks", headers=scoped)
        assert listing.json() == []
        assert (await client.get("/healthz")).status_code == 200


async def test_prediction_log_is_sent_with_the_served_values() -> None:
    producer = FakeProducer()
    predictor, app = await make_predictor(
        train_version(TASK, objective=Objective.REGRESSION), producer=producer
    )
    async for client in _client(app):
        body = (await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})).json()
    await predictor.log.stop()
    [(topic, value, key)] = producer.sent
    logged = orjson.loads(value)
    assert (topic, key) == ("predictions.log", TASK.encode())
    assert logged["prediction_id"] == body["prediction_id"]
    assert logged["score"] == body["score"]
    assert logged["model_version"] == 1


async def test_cheap_rows_skip_the_cache_and_explanations_use_it(redis: FakeRedis) -> None:
    predictor, app = await make_predictor(train_version(TASK), redis=redis)
    predictor.cache_min_row_cost_us = 1e9  # scoring is always cheaper than Redis here
    async for client in _client(app):
        for _ in range(2):
            plain = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
            await predictor.cache.flush()
            assert plain.json()["cached"] is False
        assert not [k for k in redis.data if ":pcache:" in k]
        answers = []
        for _ in range(2):
            explained = await client.post(
                f"/v1/tasks/{TASK}/predict", json={"features": ROW, "explain": True}
            )
            await predictor.cache.flush()
            answers.append(explained.json())
        assert [a["cached"] for a in answers] == [False, True]
        assert answers[0]["contributions"] == answers[1]["contributions"]


async def test_heartbeat_gauges_count_requests_errors_models_and_the_log_queue(
    redis: FakeRedis,
) -> None:
    from predictor.config import Settings
    from predictor.prediction_log import PredictionLogSender
    from predictor.service import PredictorService
    from predictor.serving import heartbeat_gauges

    predictor, app = await make_predictor(train_version(TASK), redis=redis)
    # A queue of two and no producer: the third prediction overflows it.
    predictor.log = PredictionLogSender(None, "predictions.log", predictor.metrics, max_queue=2)
    async for client in _client(app):
        for _ in range(3):
            ok = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
            assert ok.status_code == 200
        bad = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": {"steps": "x"}})
        assert bad.status_code == 422  # the caller's mistake: a request, not an error
        missing = await client.post("/v1/tasks/no.such/predict", json={"features": ROW})
        assert missing.status_code == 404
        redis.down = True
        down = await client.post(
            f"/v1/tasks/{TASK}/predict", json={"features": ROW, "entity_id": "user-1"}
        )
        assert down.status_code == 503  # ours: counted as an error
    assert heartbeat_gauges(predictor) == {
        "requests_total": 6.0,
        "request_errors_total": 1.0,
        "models_loaded": 1.0,
        "prediction_log_queue_depth": 2.0,
        "prediction_log_overflow_total": 1.0,
        "prediction_log_dropped_total": 1.0,
    }
    await predictor.log.flush()  # no producer: both queued entries are dropped, counted
    gauges = heartbeat_gauges(predictor)
    assert gauges["prediction_log_queue_depth"] == 0.0
    assert gauges["prediction_log_dropped_total"] == 3.0
    # The service hands the publisher the same gauges (none before start-up).
    service = PredictorService(Settings(heartbeat_interval_s=2.0))
    assert service._gauges() == {}
    service.predictor = predictor
    beat = service.heartbeat.build()
    assert beat.service == "predictor" and beat.gauges == heartbeat_gauges(predictor)
    assert beat.rss_bytes > 0


async def test_invalid_path_and_query_parameters_are_422s_naming_them_and_not_counted(
    served: tuple[Any, httpx.AsyncClient],
) -> None:
    predictor, client = served
    cases = {
        "/v1/tasks/Bad%20Name/predict": (
            "path.task",
            "path.task: String should match pattern '^[a-z0-9][a-z0-9._-]{0,127}$'",
        ),
        f"/v1/tasks/{'a' * 129}/predict": (
            "path.task",
            "path.task: String should have at most 128 characters",
        ),
        f"/v1/tasks/{TASK}/predict?explain=maybe": (
            "query.explain",
            "query.explain: Input should be a valid boolean, unable to interpret input",
        ),
    }
    for url, (field, detail) in cases.items():
        response = await client.post(url, json={"features": ROW})
        assert response.status_code == 422
        assert response.json() == {"detail": detail, "field": field, "reason": "invalid_field"}
    assert predictor.counts.requests == 0
    for raw, expected in [("TRUE", True), ("on", True), ("1", True), ("No", False), ("0", False)]:
        response = await client.post(
            f"/v1/tasks/{TASK}/predict?explain={raw}", json={"features": ROW}
        )
        assert response.status_code == 200
        assert ("contributions" in response.json()) is expected


async def test_predict_parameters_stay_in_the_openapi_schema(
    served: tuple[Any, httpx.AsyncClient],
) -> None:
    _, client = served
    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/tasks/{task}/predict"]
    params = {(p["in"], p["name"]): p for p in operation["post"]["parameters"]}
    assert params["path", "task"]["required"] is True
    assert params["path", "task"]["schema"]["maxLength"] == 128
    assert params["query", "explain"]["schema"]["type"] == "boolean"
    assert "requestBody" in operation["post"]
