"""Unit tests are hermetic: no Flywheel or cluster variable from the caller's shell.

`make test` exports the stack's endpoints for the integration tests, and a developer
may have moved a port; neither may change what a unit test sees.
"""

from __future__ import annotations

import os

import pytest

_CLUSTER_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_") or name in _CLUSTER_VARIABLES:
            monkeypatch.delenv(name)
