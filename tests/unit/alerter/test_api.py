"""The HTTP API: authentication (hashed key, constant-time compare), silences, ingest."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

from alerter.api import create_app
from flywheel.events import Alert
from tests.unit.alerter.conftest import Harness, build_harness, make_alert, simple_config
from tests.unit.alerter.test_inbound import ALERTMANAGER_V4

KEY = "test-api-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def harness() -> Harness:
    return build_harness(simple_config())


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[tuple[httpx.AsyncClient, list[Alert]]]:
    published: list[Alert] = []

    async def publish(alerts: list[Alert]) -> None:
        published.extend(alerts)

    app = create_app(
        harness.engine, publish, hashlib.sha256(KEY.encode()).digest(), harness.clock.now
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://alerter") as client:
        yield client, published


async def test_healthz_is_open(api: tuple[httpx.AsyncClient, list[Alert]]) -> None:
    client, _ = api
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": "nope"}]
)
async def test_protected_endpoints_refuse_missing_or_wrong_keys(
    api: tuple[httpx.AsyncClient, list[Alert]], headers: dict[str, str]
) -> None:
    client, _ = api
    for method, path in [
        ("GET", "/api/v1/silences"),
        ("POST", "/api/v1/silences"),
        ("POST", "/api/v1/receive/alertmanager"),
        ("GET", "/api/v1/alerts"),
    ]:
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path)


async def test_silence_lifecycle(
    api: tuple[httpx.AsyncClient, list[Alert]], harness: Harness
) -> None:
    client, _ = api
    created = await client.post(
        "/api/v1/silences",
        headers=AUTH,
        json={"matchers": ['task="daisy"'], "duration": "2h", "created_by": "ops"},
    )
    assert created.status_code == 201
    silence_id = created.json()["id"]
    await harness.accept(make_alert(clock=harness.clock))
    alerts = (await client.get("/api/v1/alerts", headers={"X-API-Key": KEY})).json()
    assert alerts[0]["muted"] is True
    assert silence_id in harness.journal.state.silences
    expired = await client.delete(f"/api/v1/silences/{silence_id}", headers=AUTH)
    assert expired.status_code == 200
    listed = (await client.get("/api/v1/silences", headers=AUTH)).json()
    assert [s["active"] for s in listed] == [False]


async def test_bad_silence_names_the_field(api: tuple[httpx.AsyncClient, list[Alert]]) -> None:
    client, _ = api
    response = await client.post(
        "/api/v1/silences",
        headers=AUTH,
        json={"matchers": ['task=~"("'], "created_by": "ops"},
    )
    assert response.status_code == 422
    assert "matchers.0" in response.json()["detail"]


async def test_alertmanager_webhook_is_accepted_and_published(
    api: tuple[httpx.AsyncClient, list[Alert]],
) -> None:
    client, published = api
    response = await client.post("/api/v1/receive/alertmanager", headers=AUTH, json=ALERTMANAGER_V4)
    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    assert [a.name for a in published] == ["HighLatency", "DiskFull"]


async def test_invalid_webhook_payload_names_the_field(
    api: tuple[httpx.AsyncClient, list[Alert]],
) -> None:
    client, published = api
    response = await client.post(
        "/api/v1/receive/grafana", headers=AUTH, json={"alerts": [{"status": "firing"}]}
    )
    assert response.status_code == 422
    assert response.json()["field"].startswith("alerts.0")
    assert published == []


async def test_metrics_are_exposed(api: tuple[httpx.AsyncClient, list[Alert]]) -> None:
    client, _ = api
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "flywheel_alerter_alerts" in response.text
