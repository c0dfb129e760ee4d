"""Routing-tree config: inheritance, matchers, errors naming the field, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerter.config import Settings
from alerter.matchers import parse_matcher
from alerter.routing import load_config, parse_config, parse_duration
from flywheel.errors import ConfigError

BASE = {"receivers": [{"name": "team", "type": "log"}]}


def test_children_inherit_receiver_grouping_and_timers() -> None:
    config = parse_config(
        {
            "route": {
                "receiver": "team",
                "group_by": ["task"],
                "group_wait": "10s",
                "repeat_interval": "1h30m",
                "send_resolved": False,
                "routes": [{"matchers": ['severity="critical"'], "group_interval": "1m"}],
            },
            **BASE,
        }
    )
    [child] = config.routing_tree().routes
    assert child.receiver == "team"
    assert child.group_by == ("task",)
    assert child.group_wait == 10.0
    assert child.group_interval == 60.0
    assert child.repeat_interval == 5400.0
    assert child.send_resolved is False


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('task="a"', {"task": "a"}, True),
        ('task!="a"', {"task": "a"}, False),
        ('task=~"a|b"', {"task": "b"}, True),
        ('task=~"a"', {"task": "ab"}, False),  # anchored, as in Alertmanager
        ('task!~"x.*"', {"task": "y"}, True),
        ('missing=""', {}, True),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"route": {"receiver": "nobody"}, **BASE}, "receiver 'nobody' is not defined"),
        ({"route": {"receiver": "team", "group_wait": "soon"}, **BASE}, "route.group_wait"),
        (
            {"route": {"receiver": "team", "routes": [{"matchers": ["bad matcher"]}]}, **BASE},
            "route.routes.0.matchers.0",
        ),
        ({"route": {"receiver": "team"}, "receivers": []}, "receivers"),
        (
            {
                "route": {"receiver": "team"},
                "receivers": [
                    {"name": "team", "type": "webhook", "url": "http://x", "hmac_secret": "short"}
                ],
            },
            "hmac_secret",
        ),
        (
            {
                "route": {"receiver": "team"},
                "receivers": [
                    {
                        "name": "team",
                        "type": "email",
                        "to": ["a@b.c"],
                        "from": "x@b.c",
                        "smtp_host": "mail",
                        "security": "none",
                        "username": "u",
                        "password": "p",
                    }
                ],
            },
            "security",
        ),
        ({"route": {"receiver": "team", "matchers": ['a="b"']}, **BASE}, "route.matchers"),
        ({"route": {"receiver": "team", "colour": "red"}, **BASE}, "route.colour"),
    ],
)
def test_invalid_config_names_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert field in str(caught.value)


def test_secrets_come_from_files_or_env_and_stay_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "pd-key"
    key_file.write_text("FILEKEY\n")
    monkeypatch.setenv("HOOK_SECRET", "env-secret-0123456789")
    config_file = tmp_path / "alerter.yaml"
    config_file.write_text(
        f"""
route: {{receiver: pd}}
receivers:
  - {{name: pd, type: pagerduty, routing_key_file: {key_file}}}
  - {{name: hook, type: webhook, url: "https://example.com/h", hmac_secret_env: HOOK_SECRET}}
"""
    )
    config = load_config(config_file)
    pd, hook = config.receivers
    assert pd.routing_key.get_secret_value() == "FILEKEY"  # type: ignore[union-attr]
    assert hook.hmac_secret.get_secret_value() == "env-secret-0123456789"  # type: ignore[union-attr]
    assert "FILEKEY" not in repr(config) and "env-secret" not in repr(config)


def test_missing_secret_env_is_named() -> None:
    with pytest.raises(ConfigError, match="routing_key_env"):
        parse_config(
            {
                "route": {"receiver": "pd"},
                "receivers": [{"name": "pd", "type": "pagerduty", "routing_key_env": "NOPE_X1"}],
            }
        )


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration(5) == 5.0
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_settings_hash_the_api_key_and_refuse_weak_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_ALERTER_API_KEY", "k" * 20)
    settings = Settings()
    assert settings.api_key_digest() is not None
    assert "kkkk" not in repr(settings)
    monkeypatch.setenv("FLYWHEEL_ALERTER_API_KEY", "short")
    with pytest.raises(ValueError, match="alerter_api_key"):
        Settings()
