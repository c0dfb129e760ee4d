"""deploy/docker-compose.yml and the service Dockerfiles, checked against the code.

No Docker engine runs here, so nothing is built or started: every service, port,
health probe and environment name in the compose file is checked against the
service table (``flywheel_cli.components``), each service's ``Settings`` class and
``flywheel.topics``. ``docker compose config`` (or v1 ``docker-compose config``)
validates the file's schema without an engine, when a client is installed.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from flywheel.settings import ServiceSettings
from flywheel.topics import ALL_TOPICS
from flywheel_cli.components import SERVICES, ServiceSpec

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
PROMETHEUS_COMPOSE = DEPLOY / "prometheus" / "prometheus.compose.yml"

# Compose services that are not rows of the service table.
INFRASTRUCTURE = {"kafka", "redis", "kafka-topics", "prometheus", "grafana"}
# Where each service's settings bind their HTTP server (the port is ServiceSpec.port_env).
HOST_ENV = {
    "stream-ingest": "FLYWHEEL_INGEST_HOST",
    "trainer": "FLYWHEEL_TRAINER_HOST",
    "predictor": "FLYWHEEL_PREDICTOR_HOST",
    "optimizer": "FLYWHEEL_OPTIMIZER_HOST",
    "alerter": "FLYWHEEL_ALERTER_HTTP_HOST",
}
SPEC_IDS = [spec.name for spec in SERVICES]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def settings_class(spec: ServiceSpec) -> type[BaseSettings]:
    cls = importlib.import_module(f"{spec.module}.config").Settings
    assert issubclass(cls, ServiceSettings)
    return cls


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Every environment name ``cls`` reads (upper case) -> the field it sets."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias
        if alias is None:
            choices = [prefix + field_name]
        elif isinstance(alias, str):
            choices = [alias]
        elif isinstance(alias, AliasChoices):
            choices = [choice for choice in alias.choices if isinstance(choice, str)]
        else:  # an AliasPath reads inside a value, never a variable of its own
            choices = []
        for choice in choices:
            names[choice.upper()] = field_name
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {str(key): str(value) for key, value in env.items()}


def healthcheck_command(service: dict[str, Any]) -> str:
    check = service.get("healthcheck")
    assert check and not check.get("disable"), "no healthcheck"
    test = check["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def published_ports(service: dict[str, Any]) -> set[tuple[int, int]]:
    pairs = set()
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        pairs.add((int(host), int(container)))
    return pairs


def test_compose_runs_exactly_the_service_table_plus_infrastructure(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) - INFRASTRUCTURE == {spec.name for spec in SERVICES}
    assert set(services) >= INFRASTRUCTURE
    assert set(HOST_ENV) == {spec.name for spec in SERVICES}


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_each_service_is_built_from_its_own_dockerfile_at_the_repo_root(
    spec: ServiceSpec, services: dict[str, dict[str, Any]]
) -> None:
    build = services[spec.name]["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert build["dockerfile"] == f"services/{spec.name}/Dockerfile"
    assert (ROOT / build["dockerfile"]).is_file()


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_dockerfile_installs_dependencies_then_code_and_runs_the_module(
    spec: ServiceSpec,
) -> None:
    text = (ROOT / "services" / spec.name / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert re.search(r"^COPY --from=ghcr\.io/astral-sh/uv:\S+ /uv ", text, re.M)
    # The dependency layer sees only manifests; the code comes after it.
    assert "! -name pyproject.toml ! -name uv.lock -delete" in text
    deps = text.index(f"uv sync --frozen --no-dev --no-install-workspace --package {spec.name}\n")
    code = text.index(f"uv sync --frozen --no-dev --package {spec.name}\n")
    assert (
        deps
        < text.index("COPY shared shared")
        < text.index(f"COPY services/{spec.name} services/{spec.name}")
        < code
    )
    assert text.count("--mount=type=cache,target=/root/.cache/uv") == 2
    user = re.findall(r"^USER (\S+)\s*$", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert re.search(rf"^EXPOSE {spec.default_port}\s*$", text, re.M)
    assert f"{HOST_ENV[spec.name]}=0.0.0.0" in text
    assert f"{spec.port_env}={spec.default_port}" in text
    health = re.search(r"^HEALTHCHECK .*?\n(?:\s+CMD .*)$", text, re.M | re.S)
    assert health and "urllib.request" in health.group(0)
    assert spec.health_path and spec.health_path in health.group(0)
    assert spec.port_env in health.group(0)
    assert text.rstrip().endswith(f'CMD ["python", "-m", "{spec.module}"]')


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_dockerfile_names_only_settings_fields(spec: ServiceSpec) -> None:
    text = (ROOT / "services" / spec.name / "Dockerfile").read_text(encoding="utf-8")
    known = env_names(settings_class(spec))
    for name in set(re.findall(r"\bFLYWHEEL_[A-Z0-9_]+", text)):
        assert name in known, f"{name} is not a field of {spec.module}.config.Settings"


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_environment_names_are_fields_of_the_services_settings(
    spec: ServiceSpec, services: dict[str, dict[str, Any]]
) -> None:
    env = environment(services[spec.name])
    known = env_names(settings_class(spec))
    unknown = sorted(name for name in env if name.upper() not in known)
    assert not unknown, f"not fields of {spec.module}.config.Settings: {unknown}"
    assert env[spec.port_env] == str(spec.default_port)
    assert env[HOST_ENV[spec.name]] == "0.0.0.0"
    assert env["FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["FLYWHEEL_REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_settings_accept_the_compose_environment(
    spec: ServiceSpec, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validators run too: a value the service would refuse at start-up fails here.
    for name, value in environment(services[spec.name]).items():
        monkeypatch.setenv(name, value)
    settings = settings_class(spec)()
    fields = env_names(type(settings))
    assert getattr(settings, fields[spec.port_env]) == spec.default_port
    assert getattr(settings, fields[HOST_ENV[spec.name]]) == "0.0.0.0"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.redis_url == "redis://redis:6379/0"


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_port_is_published_and_probed_on_healthz(
    spec: ServiceSpec, services: dict[str, dict[str, Any]]
) -> None:
    service = services[spec.name]
    port = int(environment(service)[spec.port_env])
    assert (port, port) in published_ports(service)
    probe = healthcheck_command(service)
    assert f"127.0.0.1:{port}{spec.health_path}" in probe
    assert "urllib.request" in probe


def test_every_dependency_exists_and_can_be_waited_for(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                healthcheck_command(services[target])
            else:
                assert condition == "service_completed_successfully", (name, target)
                assert services[target].get("restart", "no") == "no"


@pytest.mark.parametrize("spec", SERVICES, ids=SPEC_IDS)
def test_services_wait_for_kafka_redis_and_the_topics(
    spec: ServiceSpec, services: dict[str, dict[str, Any]]
) -> None:
    depends = services[spec.name]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["kafka-topics"]["condition"] == "service_completed_successfully"


def test_some_service_does_not_create_topics_so_a_topic_step_is_needed() -> None:
    # If every service created every topic it uses, kafka-topics could go.
    callers = {
        spec.name
        for spec in SERVICES
        if any(
            "ensure_topics(" in path.read_text(encoding="utf-8")
            for path in (ROOT / "services" / spec.name / "src").rglob("*.py")
        )
    }
    assert callers != {spec.name for spec in SERVICES}


def test_topic_step_creates_every_flywheel_topic_with_the_shared_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    step = services["kafka-topics"]
    script = step["command"][-1]
    assert step["command"][:2] == ["python", "-c"]
    compile(script, "kafka-topics", "exec")
    assert "ensure_topics(config, ALL_TOPICS)" in script
    assert "from flywheel.topics import ALL_TOPICS" in script
    assert len(ALL_TOPICS) > 0
    assert step["depends_on"]["kafka"]["condition"] == "service_healthy"
    env = environment(step)
    known = env_names(ServiceSettings)
    assert all(name.upper() in known for name in env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = ServiceSettings().kafka_config("flywheel-topics")
    assert config.bootstrap_servers == "kafka:9092"
    assert config.replication_factor == 1


def test_kafka_is_a_single_kraft_node_with_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert env[name] == "1", name
    # models.registry records reach 16 MiB (flywheel.topics); the broker must accept them.
    biggest = max(int(t.extra_config.get("max.message.bytes", 0)) for t in ALL_TOPICS)
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) >= biggest
    # The data directory is the volume, or a restart loses every topic.
    assert f"kafka-data:{env['KAFKA_LOG_DIRS']}" in kafka["volumes"]
    assert "kafka-broker-api-versions.sh" in healthcheck_command(kafka)
    assert "redis-cli" in healthcheck_command(services["redis"])


def test_prometheus_scrapes_every_service_by_its_compose_name(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert f"--config.file=/etc/prometheus/{PROMETHEUS_COMPOSE.name}" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS_COMPOSE.read_text(encoding="utf-8"))
    targets: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets |= {(name, int(sd["port"])) for name in sd["names"]}
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets.add((host, int(port)))
    for spec in SERVICES:
        port = int(environment(services[spec.name])[spec.port_env])
        assert (spec.name, port) in targets, spec.name
    assert not {host for host, _ in targets} & {"127.0.0.1", "localhost"}
    # The same jobs and rules as the local config, so alerts and dashboards carry over.
    local = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    assert [j["job_name"] for j in config["scrape_configs"]] == [
        j["job_name"] for j in local["scrape_configs"]
    ]
    assert config["rule_files"] == local["rule_files"]


def test_grafana_gets_the_provisioning_and_dashboards_it_expects(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert (DEPLOY / mounts["/etc/grafana/provisioning"]).resolve() == (
        DEPLOY / "grafana" / "provisioning"
    )
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/flywheel.yml").read_text("utf-8")
    )
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert (DEPLOY / mounts[dashboards_path]).resolve() == DEPLOY / "grafana" / "dashboards"
    assert environment(grafana)["FLYWHEEL_PROMETHEUS_URL"] == "http://prometheus:9090"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for entry in (".git", ".venv", ".flywheel", ".mypy_cache", "**/__pycache__"):
        assert entry in lines
    # The dependency layer needs every manifest; none may be ignored.
    for manifest in ("uv.lock", "pyproject.toml", "shared", "services", "cli"):
        assert manifest not in lines


def test_make_targets_drive_this_compose_file() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-f deploy/docker-compose.yml" in makefile
    assert re.search(r"^compose-up: ## .+\n\t\$\(COMPOSE\) up -d --build$", makefile, re.M)
    assert re.search(r"^compose-down: ## .+\n\t\$\(COMPOSE\) down$", makefile, re.M)


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no docker compose client (`docker compose` plugin or docker-compose)")
    # `config` only parses and validates; it needs no Docker engine.
    result = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
