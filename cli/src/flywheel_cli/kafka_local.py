"""A single-node Apache Kafka (KRaft, combined broker+controller) run from Maven jars.

The jars come from ``deploy/local/kafka/pom.xml`` via Maven's dependency plugin into
a cache folder; a stamp with the pom's hash tells whether the cache matches the pom.
Storage is formatted once (``--standalone``: a one-voter dynamic quorum); the config
is re-rendered on every start so ports can move, except the controller port, which
formatting writes into the metadata log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

from flywheel.errors import ConfigError, FlywheelError
from flywheel_cli.config import LOOPBACK, StackConfig

__all__ = [
    "JarsError",
    "broker_argv",
    "class_archive",
    "ensure_jars",
    "ensure_storage_formatted",
    "jars_present",
    "new_cluster_id",
    "publish_class_archive",
    "render_log4j2_properties",
    "render_server_properties",
    "write_broker_config",
]

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
STAMP_NAME = ".pom.sha256"
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
ARCHIVE_AT_EXIT = "-XX:ArchiveClassesAtExit="


class JarsError(FlywheelError):
    """The Kafka jar cache could not be filled."""


def render_server_properties(config: StackConfig) -> str:
    """The broker's ``server.properties``: loopback only, every replication factor 1."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{config.controller_port}",
        "listeners": (
            f"PLAINTEXT://{LOOPBACK}:{config.kafka_port},"
            f"CONTROLLER://{LOOPBACK}:{config.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{config.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(config.kafka_data_dir),
        "num.partitions": "1",
        # One broker: every internal topic must accept a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        # Tests create a consumer group each; the 3 s default delay would slow every one.
        "group.initial.rebalance.delay.ms": "0",
        # The cleaner reserves this much heap up front (128 MiB by default).
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        # Topics come from flywheel.topics only; a typo must fail, not create a topic.
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "num.network.threads": "2",
        "num.io.threads": "4",
        # Models travel through models.registry (16 MiB per record, see flywheel.topics).
        "message.max.bytes": str(16 * 1024 * 1024 + 1024),
        "replica.fetch.max.bytes": str(16 * 1024 * 1024 + 1024),
    }
    header = "# Rendered by `flywheel stack up` on every start; edits are overwritten.\n"
    return header + "".join(f"{key}={value}\n" for key, value in props.items())


def render_log4j2_properties(logs_dir: Path) -> str:
    """Broker logging: INFO to a size-capped rolling file, the noisy loggers at WARN.

    A properties file, because log4j2's YAML format needs jackson-dataformat-yaml on
    the broker's classpath at exactly the right version.
    """
    log_file = logs_dir / "kafka.log"
    lines = [
        "status = warn",
        "name = flywheel-kafka",
        "appender.file.type = RollingFile",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log_file}",
        f"appender.file.filePattern = {log_file}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 20MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
    ]
    noisy = {
        "request": "kafka.request.logger",
        "network": "kafka.network.RequestChannel$",
        "statechange": "state.change.logger",
        "cleaner": "kafka.log.LogCleaner",
        "authorizer": "kafka.authorizer.logger",
        "zstd": "com.github.luben.zstd",
    }
    for key, logger in noisy.items():
        lines += [f"logger.{key}.name = {logger}", f"logger.{key}.level = WARN"]
    return "\n".join(lines) + "\n"


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars_present(lib_dir: Path, pom: Path) -> bool:
    """Whether ``lib_dir`` holds the runtime classpath of the current pom."""
    stamp = lib_dir / STAMP_NAME
    has_broker = any(lib_dir.glob("kafka_2.13-*.jar"))
    if not has_broker:
        return False
    if not stamp.is_file():
        # A cache filled by hand before stamps existed: trust it rather than refetch.
        return True
    return not pom.is_file() or stamp.read_text(encoding="ascii").strip() == _pom_digest(pom)


def ensure_jars(lib_dir: Path, pom: Path, *, force: bool = False) -> bool:
    """Fill the jar cache from Maven Central when it is missing or stale.

    Returns True when it fetched. Fetches into a sibling folder and swaps it in, so an
    interrupted download never leaves a half-filled classpath that looks complete.
    """
    if not force and jars_present(lib_dir, pom):
        return False
    if not pom.is_file():
        raise JarsError(f"{pom} not found: run from a Flywheel checkout")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsError("mvn (Maven) is not installed: run `make install`")
    staging = lib_dir.with_name(lib_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    argv = [
        mvn, "-q", "-B", "-f", str(pom), DEPENDENCY_PLUGIN,
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    # argv is built here from fixed strings and our own paths; no shell is involved.
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)  # noqa: S603
    if done.returncode != 0:
        output = done.stdout + done.stderr
        raise JarsError(f"fetching Kafka jars failed ({done.returncode}):\n{output}")
    (staging / STAMP_NAME).write_text(_pom_digest(pom) + "\n", encoding="ascii")
    old = lib_dir.with_name(lib_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if lib_dir.exists():
        lib_dir.rename(old)
    staging.rename(lib_dir)
    shutil.rmtree(old, ignore_errors=True)
    return True


def java_executable(java_home: str | None) -> str:
    if java_home and (Path(java_home) / "bin/java").is_file():
        return str(Path(java_home) / "bin/java")
    java = shutil.which("java")
    if java is None:
        raise ConfigError("java (JDK 17+) is not installed: run `make install`")
    return java


def _jvm_args(config: StackConfig) -> list[str]:
    return [
        java_executable(config.java_home),
        f"-Xmx{config.kafka_heap_mb}m",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config.kafka_dir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={config.logs_dir}",
        "-cp",
        # Java expands the wildcard itself; no shell is involved.
        str(config.kafka_lib_dir / "*"),
    ]


def class_archive(config: StackConfig) -> Path:
    """The broker's class-data-sharing archive, beside the jar cache.

    Loading and verifying Kafka's classes is most of a cold broker start; a CDS
    archive halved time-to-port on this project's 2-core machines. An archive only
    fits the JDK and jars that wrote it, so both are in the name: a new JDK or pom
    simply makes a new archive.
    """
    java = Path(java_executable(config.java_home)).resolve()
    jars = sorted(jar.name for jar in config.kafka_lib_dir.glob("*.jar"))
    fingerprint = "\n".join([str(java), str(java.stat().st_mtime_ns), *jars])
    key = hashlib.sha256(fingerprint.encode()).hexdigest()[:12]
    return config.kafka_lib_dir.parent / f"kafka-classes-{key}.jsa"


def _class_sharing_options(config: StackConfig) -> list[str]:
    archive = class_archive(config)
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"]
    # No archive yet: the JVM writes one when it exits. Under a private name, since
    # two brokers may stop at once; publish_class_archive renames it after a stop.
    partial = archive.with_name(f"{archive.stem}.{uuid.uuid4().hex[:8]}.partial")
    return [f"{ARCHIVE_AT_EXIT}{partial}"]


def publish_class_archive(argv: Sequence[str]) -> Path | None:
    """After the broker run by ``argv`` has exited, make the archive it wrote current."""
    partials = [
        Path(arg.removeprefix(ARCHIVE_AT_EXIT)) for arg in argv if arg.startswith(ARCHIVE_AT_EXIT)
    ]
    for partial in partials:
        archive = partial.with_name(partial.name.rsplit(".", 2)[0] + ".jsa")
        if partial.is_file() and partial.stat().st_size > 0 and not archive.exists():
            partial.replace(archive)
            return archive
        partial.unlink(missing_ok=True)
    return None


def broker_argv(config: StackConfig, *, class_sharing: bool = True) -> list[str]:
    java, *options = _jvm_args(config)
    sharing = _class_sharing_options(config) if class_sharing else []
    return [java, *sharing, *options, BROKER_MAIN, str(config.kafka_dir / "server.properties")]


def write_broker_config(config: StackConfig) -> None:
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    (config.kafka_dir / "server.properties").write_text(
        render_server_properties(config), encoding="utf-8"
    )
    (config.kafka_dir / "log4j2.properties").write_text(
        render_log4j2_properties(config.logs_dir), encoding="utf-8"
    )


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID, URL-safe base64 without padding.

    Same shape as ``StorageTool random-uuid`` without paying for a JVM start. Kafka
    rejects ids starting with '-' (they read as CLI flags), so draw again if so.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def ensure_storage_formatted(config: StackConfig) -> str | None:
    """Format the log dir once; return the new cluster id, or None if already formatted."""
    marker = config.kafka_dir / "format.json"
    if (config.kafka_data_dir / "meta.properties").is_file():
        if marker.is_file():
            formatted = json.loads(marker.read_text(encoding="utf-8"))
            if formatted.get("controller_port") != config.controller_port:
                raise ConfigError(
                    f"Kafka storage in {config.kafka_data_dir} was formatted for controller "
                    f"port {formatted.get('controller_port')}, not {config.controller_port}: "
                    "use that port, or `flywheel stack down` and delete the folder"
                )
        return None
    config.kafka_data_dir.mkdir(parents=True, exist_ok=True)
    cluster_id = new_cluster_id()
    argv = [
        *_jvm_args(config), STORAGE_TOOL_MAIN, "format", "--standalone",
        "-t", cluster_id, "-c", str(config.kafka_dir / "server.properties"),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
    if done.returncode != 0:
        raise FlywheelError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
    marker.write_text(
        json.dumps({"cluster_id": cluster_id, "controller_port": config.controller_port}) + "\n",
        encoding="utf-8",
    )
    return cluster_id
