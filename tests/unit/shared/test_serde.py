"""serde: round trips, and every refusal carries a reason and names the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from flywheel import serde
from flywheel.errors import EventValidationError, SerdeError
from flywheel.events import Alert, AlertSeverity, AlertState, FeedbackEvent, TrainingBatch


def _event_dict(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1,
        "event_id": "3f6c-0001",
        "task": "daisy-chain.task-success",
        "features": {"steps": 12, "retries": 0.0, "agent": "planner"},
        "label": True,
        "prediction_id": "p-1",
        "occurred_at": "2026-11-26T10:00:00Z",
        "source": "daisy-chain",
    }
    base.update(overrides)
    return base


def _refusal(payload: bytes, max_bytes: int = serde.DEFAULT_MAX_EVENT_BYTES) -> SerdeError:
    with pytest.raises(SerdeError) as info:
        serde.decode(FeedbackEvent, payload, max_bytes=max_bytes)
    return info.value


def test_contract_example_round_trips() -> None:
    payload = orjson.dumps(_event_dict())
    event = serde.decode(FeedbackEvent, payload)
    assert event.features == {"steps": 12, "retries": 0.0, "agent": "planner"}
    assert event.occurred_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert serde.decode(FeedbackEvent, serde.encode(event)) == event


def test_timestamps_are_normalised_to_utc() -> None:
    event = serde.decode(
        FeedbackEvent, orjson.dumps(_event_dict(occurred_at="2026-11-26T12:00:00+02:00"))
    )
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.hour == 10
    assert serde.encode(event).count(b"2026-11-26T10:00:00Z") == 1


def test_naive_timestamp_is_refused_naming_the_field() -> None:
    error = _refusal(orjson.dumps(_event_dict(occurred_at="2026-11-26T10:00:00")))
    assert isinstance(error, EventValidationError)
    assert error.field == "occurred_at"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "broken_json"),
        (b"", "broken_json"),
        (b"[1, 2]", "broken_json"),
        (b'"just a string"', "broken_json"),
        (b'{"features": {"x": NaN}}', "non_finite"),
        (b'{"features": {"x": Infinity}}', "non_finite"),
        (b'{"features": {"x": 1e400}}', "non_finite"),
    ],
)
def test_unparseable_payloads_get_their_own_reason(payload: bytes, reason: str) -> None:
    assert _refusal(payload).reason == reason


def test_oversized_payload_is_refused_before_parsing() -> None:
    error = _refusal(b" " * 2_000 + b"{}", max_bytes=1_000)
    assert error.reason == "oversized"
    assert "1000" in str(error)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"task": "Not A Task!"}, "task"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "has space"}, "event_id"),
        ({"features": {"steps": [1, 2]}}, "features.steps"),
        ({"features": {"steps": {"nested": 1}}}, "features.steps"),
        ({"features": {"bad name!": 1}}, "features.bad name!"),
        ({"label": None}, "label"),
        ({"label": [True]}, "label"),
        ({"unexpected": 1}, "unexpected"),
        ({"prediction_id": "x" * 200}, "prediction_id"),
    ],
)
def test_schema_violations_name_the_field(overrides: dict[str, object], field: str) -> None:
    error = _refusal(orjson.dumps(_event_dict(**overrides)))
    assert isinstance(error, EventValidationError)
    assert error.reason == "invalid_field"
    assert error.field == field
    assert str(error).startswith(f"{field}: ")


def test_missing_required_field_is_named() -> None:
    payload = _event_dict()
    del payload["event_id"]
    error = _refusal(orjson.dumps(payload))
    assert error.field == "event_id"


def test_unknown_schema_version_is_refused() -> None:
    error = _refusal(orjson.dumps(_event_dict(schema_version=2)))
    assert error.reason == "unknown_schema_version"
    assert error.field == "schema_version"


def test_too_many_features_is_refused() -> None:
    features = {f"f{i}": i for i in range(300)}
    error = _refusal(orjson.dumps(_event_dict(features=features)))
    assert error.field == "features"


def test_non_finite_python_floats_are_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match="finite"):
        FeedbackEvent(event_id="e1", task="t", features={"x": math.nan}, label=True)


def test_training_batch_rows_rebuild_the_events() -> None:
    batch = TrainingBatch(
        batch_id="b1",
        task="t",
        event_ids=["e1", "e2"],
        columns={"steps": [1, 2], "agent": ["a", None]},
        labels=[True, False],
    )
    assert batch.rows() == [{"steps": 1, "agent": "a"}, {"steps": 2, "agent": None}]
    assert len(batch) == 2
    assert serde.decode(TrainingBatch, serde.encode(batch), max_bytes=10_000) == batch


def test_alert_fingerprint_is_stable_and_label_order_free() -> None:
    one = Alert.build(
        "accuracy_drop",
        state=AlertState.FIRING,
        severity=AlertSeverity.WARNING,
        labels={"task": "t", "version": "3"},
    )
    two = Alert.build(
        "accuracy_drop",
        state=AlertState.RESOLVED,
        severity=AlertSeverity.WARNING,
        labels={"version": "3", "task": "t"},
        starts_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    )
    assert one.fingerprint == two.fingerprint
    assert two.starts_at.tzinfo == UTC
    other = Alert.build(
        "accuracy_drop",
        state=AlertState.FIRING,
        severity=AlertSeverity.WARNING,
        labels={"task": "u"},
    )
    assert other.fingerprint != one.fingerprint
