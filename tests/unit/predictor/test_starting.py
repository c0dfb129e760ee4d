"""A predictor still loading its champions says so with a 503, not a 404.

A replica that just restarted answers HTTP before its models are loaded; "no model
for this task" would be false and final for the client, while 503 sends it to
another replica (flywheel_client fails over on it).
"""

from __future__ import annotations

import httpx

from tests.unit.predictor.fakes import make_predictor
from tests.unit.predictor.modelkit import ROW

TASK = "demo.task"


async def test_predict_before_the_models_are_loaded_is_503_starting() -> None:
    predictor, app = await make_predictor()  # nothing loaded yet
    predictor.started = False
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        starting = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
        ready = await client.get("/readyz")
        predictor.started = True
        unknown = await client.post(f"/v1/tasks/{TASK}/predict", json={"features": ROW})
    assert starting.status_code == 503
    assert starting.json()["reason"] == "starting"
    assert ready.status_code == 503
    assert unknown.status_code == 404  # once started, a missing model is really missing
    assert unknown.json()["reason"] == "no_model"
