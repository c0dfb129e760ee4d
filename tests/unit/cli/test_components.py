"""The service table and how the stack decides which services exist today."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel_cli.components import (
    SERVICES,
    ServiceSpec,
    available_services,
    has_main_module,
    service_by_name,
)
from flywheel_cli.config import StackConfig
from flywheel_cli.local_stack import service_environment


def test_the_table_names_the_five_services_once_each_on_distinct_ports() -> None:
    names = [spec.name for spec in SERVICES]
    assert names == ["stream-ingest", "trainer", "predictor", "optimizer", "alerter"]
    ports = [spec.default_port for spec in SERVICES]
    assert len(set(ports)) == len(ports)
    assert not {19092, 19093, 16379} & set(ports)
    assert len({spec.port_env for spec in SERVICES}) == len(SERVICES)


def test_each_port_variable_is_a_port_field_of_that_services_settings() -> None:
    # Importing a service's config module is fine in a test (it is how the service
    # reads its environment), and it pins the table to what the services really read.
    import importlib

    for spec in SERVICES:
        try:
            settings = importlib.import_module(f"{spec.module}.config").Settings
        except ModuleNotFoundError:
            continue  # the service has no settings yet
        field_name = spec.port_env.removeprefix("FLYWHEEL_").lower()
        assert field_name in settings.model_fields, (spec.name, spec.port_env)
        assert settings.model_fields[field_name].default == spec.default_port, spec.name
    with pytest.raises(KeyError):
        service_by_name("nope")


def test_argv_runs_the_package_with_the_given_interpreter() -> None:
    assert service_by_name("trainer").argv("/venv/bin/python") == [
        "/venv/bin/python",
        "-m",
        "trainer",
    ]


def _package(root: Path, name: str, *, with_main: bool) -> None:
    pkg = root / name
    pkg.mkdir()
    # Importing the package would fail loudly: the check must not import it.
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    if with_main:
        (pkg / "__main__.py").write_text("")


def test_a_service_exists_once_its_package_has_a_main_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, "fw_ready_svc", with_main=True)
    _package(tmp_path, "fw_unready_svc", with_main=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert has_main_module("fw_ready_svc")
    assert not has_main_module("fw_unready_svc")
    assert not has_main_module("fw_absent_svc")
    table = (
        ServiceSpec("ready", "fw_ready_svc", 1, "FLYWHEEL_READY_PORT"),
        ServiceSpec("unready", "fw_unready_svc", 2, "FLYWHEEL_UNREADY_PORT"),
    )
    assert [spec.name for spec in available_services(table)] == ["ready"]


def test_available_services_is_a_subset_of_the_table_in_order() -> None:
    found = available_services()
    assert found == [spec for spec in SERVICES if spec in found]


def test_service_environment_points_the_service_at_the_stack(tmp_path: Path) -> None:
    config = StackConfig.from_env(
        {"FLYWHEEL_KAFKA_PORT": "29092", "FLYWHEEL_TOPIC_PREFIX": "dev."}, cwd=tmp_path
    )
    spec = ServiceSpec(
        "predictor", "predictor", 18080, "FLYWHEEL_PREDICTOR_PORT", env={"FLYWHEEL_EXTRA": "1"}
    )
    base = {"PATH": "/bin", "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": "stale:1"}
    env = service_environment(spec, 28080, base, config)
    assert env["PATH"] == "/bin"
    assert env["FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:29092"
    assert env["FLYWHEEL_REDIS_URL"] == "redis://127.0.0.1:16379/0"
    assert env["FLYWHEEL_TOPIC_PREFIX"] == "dev."
    assert env["FLYWHEEL_PREDICTOR_PORT"] == "28080"
    assert env["FLYWHEEL_EXTRA"] == "1"
    assert base["FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS"] == "stale:1", "caller's mapping untouched"
