"""The generated parts of README.md and docs/schemas/ match the code (``make docs``)."""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from flywheel.settings import ServiceSettings
from flywheel.topics import ALL_TOPICS
from flywheel_cli.__main__ import build_parser
from tools.docgen import ROOT, expected_files, regions, stale_files
from tools.docgen.http import apps
from tools.docgen.markdown import cell, find_regions, splice_regions
from tools.docgen.settings import env_names, service_settings, settings_table


def _diff(path: Path, expected: str) -> str:
    actual = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    lines = difflib.unified_diff(actual, expected.splitlines(), "committed", "generated", n=1)
    return "\n".join(list(lines)[:40])


def test_readme_and_schemas_are_up_to_date() -> None:
    expected = expected_files()
    stale = stale_files(expected=expected)
    details = "\n\n".join(
        f"{p.relative_to(ROOT)}:\n" + (_diff(p, expected[p]) if p in expected else "(extra file)")
        for p in stale
    )
    assert not stale, f"generated docs are stale: run `make docs` and commit.\n{details}"


def test_generation_is_deterministic_across_processes() -> None:
    # Another hash seed and terminal width: set order and argparse's wrapping must
    # not leak into the text.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "COLUMNS": "37"}
    first = regions()
    assert regions() == first
    check = subprocess.run(
        [sys.executable, "-m", "tools.docgen", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_every_setting_topic_command_and_route_is_documented() -> None:
    readme = find_regions((ROOT / "README.md").read_text(encoding="utf-8"))
    config = readme["configuration"]
    classes: list[type[BaseSettings]] = [ServiceSettings, *(s for _, s in service_settings(ROOT))]
    for settings in classes:
        for name in settings.model_fields:
            assert all(f"`{env}`" in config for env in env_names(settings, name)), name
    for spec in ALL_TOPICS:
        assert f"| `{spec.name}` |" in readme["topics"]
    parser = build_parser()
    groups = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for group in groups.choices:
        assert f"`flywheel {group}" in readme["cli"]
    for app in apps().values():
        for path in app.openapi()["paths"]:
            assert f"`{path}`" in readme["http-api"]


class _WithSecrets(ServiceSettings):
    alerter_api_key: SecretStr = SecretStr("key-that-must-not-leak-0123")
    smtp_password: str = "password-that-must-not-leak"
    slack_webhook_url: str = Field(default="https://hooks.example/T000/secret-path")
    optional_token: SecretStr | None = None


def test_secrets_never_show_their_default() -> None:
    text = settings_table(_WithSecrets, {"alerter_api_key", "smtp_password", "slack_webhook_url"})
    for leaked in ("key-that-must-not-leak", "password-that-must-not-leak", "secret-path"):
        assert leaked not in text
    assert text.count("(secret, not shown)") == 3
    assert "| `FLYWHEEL_OPTIONAL_TOKEN` | secret string | unset |" in settings_table(
        _WithSecrets, {"optional_token"}
    )


def test_splice_replaces_only_the_marked_body() -> None:
    text = (
        "intro\n<!-- BEGIN GENERATED: cli -->\nold\n<!-- END GENERATED: cli -->\n"
        "outro\n<!-- BEGIN GENERATED: other -->\nkept\n<!-- END GENERATED: other -->\n"
    )
    out = splice_regions(text, {"cli": "new table\n"})
    assert out == text.replace("\nold\n", "\nnew table\n")
    assert find_regions(out) == {"cli": "new table\n", "other": "kept\n"}


@pytest.mark.parametrize(
    "text",
    ["no markers at all\n", "<!-- BEGIN GENERATED: cli -->\nx\n<!-- END GENERATED: other -->\n"],
)
def test_a_missing_marker_is_an_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="BEGIN GENERATED: cli"):
        splice_regions(text, {"cli": "table"})


def test_tag_like_text_is_escaped_outside_code_only() -> None:
    text = 'ids "<stem>.<partition>", bounds > 0, < 1, in code `<stem>.3` | pipe'
    assert cell(text) == (
        'ids "&lt;stem>.&lt;partition>", bounds > 0, < 1, in code `<stem>.3` \\| pipe'
    )
