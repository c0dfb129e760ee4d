"""The SDK's public surface is explicit and pinned (httpx's test_exported_members)."""

from __future__ import annotations

import inspect

import flywheel_client


def test_all_exports_exist_and_are_sorted() -> None:
    for name in flywheel_client.__all__:
        assert hasattr(flywheel_client, name), name
    assert flywheel_client.__all__ == sorted(flywheel_client.__all__)


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(flywheel_client).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public - set(flywheel_client.__all__) == set()


def test_every_error_derives_from_the_base() -> None:
    errors = [
        getattr(flywheel_client, n)
        for n in flywheel_client.__all__
        if n.endswith(("Error", "Rejected", "Unavailable", "Unauthorized", "NoModel"))
    ]
    assert len(errors) == 5
    for error in errors:
        assert issubclass(error, flywheel_client.FlywheelClientError), error
