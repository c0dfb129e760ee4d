from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream_ingest.config import Settings


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_TOPIC_PREFIX", raising=False)
    settings = Settings()
    assert settings.ingest_port == 19101
    assert settings.ingest_group_id == "flywheel.stream-ingest"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_DEDUP_WINDOW", "5000")
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", "staging.")
    settings = Settings()
    assert settings.ingest_dedup_window == 5000
    assert settings.topic_prefix == "staging."


def test_a_single_event_must_fit_a_batch_message() -> None:
    with pytest.raises(ValidationError, match="ingest_max_event_bytes"):
        Settings(ingest_max_event_bytes=600_000, ingest_max_batch_bytes=900_000)


@pytest.mark.parametrize("field", ["ingest_transactional_id", "ingest_group_id"])
def test_ids_are_refused_when_unsafe(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: "has spaces/and;more"})
