"""The settings every service shares, as a pydantic-settings base class.

Each service's ``config.py`` subclasses :class:`ServiceSettings` (env prefix
``FLYWHEEL_``). The library itself never instantiates settings and never reads the
environment: it only takes the frozen :class:`~flywheel.kafka.KafkaConfig` and
:class:`~flywheel.redis.RedisConfig` built from them.

``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` (no prefix) are honoured too, so one
pair of variables points the whole stack at an existing cluster.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.kafka import KafkaConfig
from flywheel.redis import RedisConfig

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_", extra="ignore", env_ignore_empty=True, frozen=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices(
            "FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    kafka_replication_factor: int = Field(default=1, ge=1, le=5)
    topic_prefix: str = Field(default="", pattern=r"^[a-zA-Z0-9._-]{0,64}$")
    redis_url: str = Field(
        default="redis://127.0.0.1:16379/0",
        validation_alias=AliasChoices("FLYWHEEL_REDIS_URL", "REDIS_URL"),
    )
    # Use the Redis Cluster client: `REDIS_URL` names any one node, the rest are discovered.
    redis_cluster: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    instance_id: str = Field(default="", max_length=128)
    # Bounded waits for dependencies at start-up (quix-streams/full-stack style).
    startup_timeout_s: float = Field(default=60.0, gt=0, le=600)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    def kafka_config(self, client_id: str) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=self.kafka_bootstrap_servers,
            client_id=client_id,
            replication_factor=self.kafka_replication_factor,
            topic_prefix=self.topic_prefix,
        )

    def redis_config(self) -> RedisConfig:
        return RedisConfig(url=self.redis_url, cluster=self.redis_cluster)
