from __future__ import annotations

import orjson
import pytest

from flywheel.events import FeedbackEvent
from flywheel.tasks import TaskDefinition
from stream_ingest.validation import EventValidator, Rejection

TASK = TaskDefinition.model_validate(
    {
        "name": "unit.task",
        "objective": "binary",
        "label": {"type": "bool"},
        "features": [
            {"name": "steps", "type": "int"},
            {"name": "retries", "type": "float"},
            {"name": "agent", "type": "category", "nullable": True},
        ],
    }
)
VALIDATOR = EventValidator({TASK.name: TASK}.get, max_event_bytes=2_048)


def event(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "event_id": "e1",
        "task": "unit.task",
        "features": {"steps": 1, "retries": 0.5, "agent": "a"},
        "label": True,
    }
    body.update(overrides)
    return orjson.dumps(body)


def test_a_valid_event_comes_back_with_its_task() -> None:
    outcome = VALIDATOR.validate(event())
    assert not isinstance(outcome, Rejection)
    parsed, task = outcome
    assert isinstance(parsed, FeedbackEvent)
    assert parsed.features["steps"] == 1
    assert task is TASK


def test_nullable_features_may_be_missing() -> None:
    assert not isinstance(
        VALIDATOR.validate(event(features={"steps": 1, "retries": 0.5})), Rejection
    )


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (None, "empty_payload", None),
        (b"", "empty_payload", None),
        (b"{not json", "broken_json", None),
        (b"[1, 2]", "broken_json", None),
        (event(features={"steps": 1, "retries": 0.5, "agent": "x" * 4_000}), "oversized", None),
        (event().replace(b"0.5", b"NaN"), "non_finite", None),
        (event().replace(b"0.5", b"1e400"), "non_finite", None),
        (event(schema_version=2), "unknown_schema_version", "schema_version"),
        (event(event_id="has spaces"), "invalid_field", "event_id"),
        (event(extra_field=1), "invalid_field", "extra_field"),
        (event(task="unit.other"), "unknown_task", "task"),
        (event(features={"steps": "1", "retries": 0.5}), "wrong_type", "features.steps"),
        (event(features={"steps": 1.5, "retries": 0.5}), "wrong_type", "features.steps"),
        (event(features={"retries": 0.5}), "missing_feature", "features.steps"),
        (
            event(features={"steps": 1, "retries": 0.5, "colour": "red"}),
            "unexpected_feature",
            "features.colour",
        ),
        (event(label="yes"), "wrong_type", "label"),
    ],
)
def test_each_refusal_has_its_reason_and_field(
    payload: bytes | None, reason: str, field: str | None
) -> None:
    outcome = VALIDATOR.validate(payload)
    assert isinstance(outcome, Rejection)
    assert (outcome.reason, outcome.field) == (reason, field)
    assert outcome.error
