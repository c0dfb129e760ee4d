"""The demo's own Flywheel deployment, beside whatever stack is already running.

The demo needs an optimizer that evaluates every second and an alerter whose routing
sends the drift alert to the demo's webhook and SMTP sink. The alerter reads its
routing only at start-up and the running stack belongs to whoever started it, so the
demo runs a private copy of the five services on free ports, in its own namespace:

* topics under ``demo-<run>.`` (deleted at the end), Redis keys under
  ``flywheel:demo-<run>:`` (deleted at the end);
* consumer groups and transactional ids of its own, so the shared services are never
  rebalanced or fenced by the demo's: every service scopes them by the topic prefix
  (``KafkaConfig.scoped``), e.g. ``demo-<run>.flywheel-trainer``;
* the shared Kafka and Redis when they answer; otherwise ``flywheel stack up`` starts
  them (only them: the demo brings its own services) and they are stopped again at
  the end, like ``make test`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.catalog import apply_tasks
from flywheel.kafka import KafkaConfig, ensure_topics
from flywheel.tasks import TaskDefinition
from flywheel.topics import ALL_TOPICS
from flywheel_cli.components import service_by_name
from flywheel_cli.config import StackConfig
from flywheel_cli.health import probe
from flywheel_cli.local_stack import LocalStack

__all__ = ["DemoStack", "free_port"]

SERVICE_NAMES = ("stream-ingest", "trainer", "predictor", "optimizer", "alerter")


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_settings(run_id: str, alerter_config: Path) -> dict[str, str]:
    """Settings of the demo's services beyond ports, endpoints and the topic prefix.

    No consumer group or transactional id: the services scope their defaults by the
    topic prefix (``demo-<run>.``), so they never meet the shared stack's.
    """
    return {
        "FLYWHEEL_REDIS_KEY_PREFIX": f"flywheel:demo-{run_id}:",
        "FLYWHEEL_ALERTER_CONFIG_FILE": str(alerter_config),
        # Consult the prediction cache for every row, so its hit rate shows (the
        # default skips it for models cheaper to score than a Redis round trip).
        "FLYWHEEL_PREDICTOR_CACHE_MIN_ROW_COST_US": "0",
        # An optimizer that evaluates twice a second: the demo lasts two minutes, and a
        # drift alert must be published before the next champion resolves it.
        "FLYWHEEL_TICK_S": "0.5",
        # Page-Hinkley on rising error: it reacts to the demo's jump within ~100 labels
        # (~2 s). Its history now spans champions, so the threshold must also hold over
        # thousands of labels of a steady 5-8 % error: 15 (tuned when every champion
        # restarted detection) paged on that noise; 40 has not (docs/demo.md).
        "FLYWHEEL_DRIFT_DETECTOR": "page_hinkley",
        "FLYWHEEL_DRIFT_PH_THRESHOLD": "40",
        "FLYWHEEL_LAG_INTERVAL_S": "5",
        "FLYWHEEL_REPLAY_S": "0",
        "FLYWHEEL_HEARTBEAT_INTERVAL_S": "2",
        "FLYWHEEL_DRIFT_QUIET_S": "20",
        "FLYWHEEL_LOG_FORMAT": "text",
        "FLYWHEEL_LOG_LEVEL": "WARNING",
    }


@dataclass
class DemoStack:
    """Start and stop the demo's deployment. ``echo`` receives progress lines."""

    run_id: str
    state_dir: Path
    alerter_config: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    echo: Callable[[str], None] = print
    ports: dict[str, int] = field(default_factory=dict)
    started_base: bool = False
    _base: LocalStack | None = None
    _services: LocalStack | None = None

    @property
    def topic_prefix(self) -> str:
        return f"demo-{self.run_id}."

    @property
    def redis_key_prefix(self) -> str:
        return f"flywheel:demo-{self.run_id}:"

    def _base_stack(self) -> LocalStack:
        config = StackConfig.from_env(self.env, cwd=Path.cwd())
        return LocalStack(config, env=self.env, python=sys.executable, echo=self.echo, services=())

    def up(self, tasks: Sequence[TaskDefinition], *, timeout_s: float = 90.0) -> None:
        """Kafka and Redis (started only if none answers), the tasks, then the services.

        The tasks are applied before the services start, so each service reads them
        with the catalog at start-up and the first event already finds its task.
        """
        deadline = time.monotonic() + timeout_s
        base = self._base = self._base_stack()
        if not all(probe(record).healthy for record in base.default_records()):
            self.echo("no Kafka/Redis answers: starting them (flywheel stack up)")
            self.started_base = True
            base.up(timeout_s=max(10.0, deadline - time.monotonic()))
        asyncio.run(self._apply(tasks))
        self.ports = {name: free_port() for name in SERVICE_NAMES}
        env = dict(self.env)
        env.update(service_settings(self.run_id, self.alerter_config))
        env.update({
            "FLYWHEEL_STATE_DIR": str(self.state_dir),
            "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS": base.config.kafka_bootstrap,
            "FLYWHEEL_REDIS_URL": base.config.redis_url,
            "FLYWHEEL_TOPIC_PREFIX": self.topic_prefix,
        })  # fmt: skip
        for name, port in self.ports.items():
            env[service_by_name(name).port_env] = str(port)
        config = StackConfig.from_env(env, cwd=Path.cwd())
        self._services = LocalStack(config, env=env, python=sys.executable, echo=self.echo)
        self._services.up(timeout_s=max(10.0, deadline - time.monotonic()))

    @property
    def kafka(self) -> KafkaConfig:
        assert self._base is not None, "up() first"
        return KafkaConfig(
            bootstrap_servers=self._base.config.kafka_bootstrap,
            client_id="flywheel-demo",
            topic_prefix=self.topic_prefix,
        )

    @property
    def redis_url(self) -> str:
        assert self._base is not None, "up() first"
        return self._base.config.redis_url

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def down(self) -> None:
        """Stop the demo's services, drop its topics and keys, and stop what it started."""
        if self._services is not None:
            self._services.down()
            self._services = None
            with contextlib.suppress(Exception):  # best effort: the run is over either way
                asyncio.run(self._forget())
        if self._base is not None and self.started_base:
            self.echo("stopping the Kafka and Redis the demo started (flywheel stack down)")
            self._base.down()
        self._base = None

    async def _apply(self, tasks: Sequence[TaskDefinition]) -> None:
        await ensure_topics(self.kafka, ALL_TOPICS)
        await apply_tasks(self.kafka, list(tasks))

    async def _forget(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        from flywheel.redis import RedisConfig, connect_redis

        kafka = self.kafka
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, client_id="demo")
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(self.topic_prefix)]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()
        redis = connect_redis(RedisConfig(url=self.redis_url))
        try:
            keys = [key async for key in redis.scan_iter(match=f"{self.redis_key_prefix}*")]
            for start in range(0, len(keys), 500):
                await redis.delete(*keys[start : start + 500])
        finally:
            await redis.aclose()
