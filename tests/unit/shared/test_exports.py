"""The library's public surface is explicit and pinned (httpx's test_exported_members)."""

from __future__ import annotations

import inspect

import flywheel


def test_all_exports_exist_and_are_sorted() -> None:
    for name in flywheel.__all__:
        assert hasattr(flywheel, name), name
    assert flywheel.__all__ == sorted(flywheel.__all__)


def test_public_names_are_exported() -> None:
    # Submodules show up as attributes once imported; only non-module names count.
    public = {
        name
        for name, value in vars(flywheel).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public - set(flywheel.__all__) == set()


def test_every_error_derives_from_the_base() -> None:
    errors = [
        getattr(flywheel, n) for n in flywheel.__all__ if n.endswith(("Error", "Unavailable"))
    ]
    assert errors
    for error in errors:
        assert issubclass(error, flywheel.FlywheelError), error
