from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from flywheel.logs import configure_logging, redact
from flywheel.settings import ServiceSettings


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("redis://user:hunter2@127.0.0.1:6379/0", "hunter2"),
        ("password=hunter2 host=x", "hunter2"),
        ('{"api_key": "sk-live-123"}', "sk-live-123"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "T000/B000/XXXX"),
        ("routing_key=R0UT1NG", "R0UT1NG"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert "***" in masked


def test_json_log_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("unit", fmt="json")
    try:
        logging.getLogger("x").warning("connect to redis://u:topsecret@h/0", extra={"task": "t"})
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["service"] == "unit"
    assert line["task"] == "t"
    assert "topsecret" not in line["msg"]


def test_settings_honour_plain_cluster_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", "staging.")
    settings = ServiceSettings()
    kafka = settings.kafka_config("svc")
    assert kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert kafka.topic_prefix == "staging."
    assert settings.redis_config().url == "redis://cache:6379/2"


def test_unsafe_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_REDIS_URL", "http://not-redis")
    with pytest.raises(ValidationError, match="FLYWHEEL_REDIS_URL"):
        ServiceSettings()
