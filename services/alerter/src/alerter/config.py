"""The alerter's settings (env prefix ``FLYWHEEL_``); routing lives in the YAML file
named by ``FLYWHEEL_ALERTER_CONFIG_FILE`` (see :mod:`alerter.routing`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from flywheel.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    alerter_config_file: Path | None = None
    alerter_http_host: str = "127.0.0.1"
    alerter_http_port: int = Field(default=18081, ge=1, le=65535)
    # Consumer group on alerts, prefixed with the topic prefix.
    alerter_consumer_group: str = Field(
        default="flywheel-alerter", pattern=r"^[A-Za-z0-9._-]{1,128}$"
    )
    # The key for the authenticated endpoints (silences, webhook ingestion). Give the
    # key itself (env or file; only its SHA-256 is kept) or just its SHA-256 hex.
    alerter_api_key: SecretStr | None = None
    alerter_api_key_file: Path | None = None
    alerter_api_key_sha256: SecretStr | None = None
    alerter_shutdown_grace_s: float = Field(default=5.0, ge=0, le=300)
    # Seconds between heartbeats on services.heartbeats (RSS, CPU, intents, DLQ).
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)

    @field_validator("alerter_api_key_sha256")
    @classmethod
    def _hex_digest(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value.get_secret_value()):
            raise ValueError("must be the 64-character lowercase hex SHA-256 of the key")
        return value

    @field_validator("alerter_api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> Settings:
        given = [
            name
            for name in ("alerter_api_key", "alerter_api_key_file", "alerter_api_key_sha256")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give only one of {', '.join(given)}")
        return self

    def api_key_digest(self) -> bytes | None:
        """SHA-256 of the API key, or None when the authenticated endpoints are off."""
        if self.alerter_api_key_sha256 is not None:
            return bytes.fromhex(self.alerter_api_key_sha256.get_secret_value())
        key: str | None = None
        if self.alerter_api_key is not None:
            key = self.alerter_api_key.get_secret_value()
        elif self.alerter_api_key_file is not None:
            key = self.alerter_api_key_file.read_text(encoding="utf-8").strip()
            if len(key) < 16:
                raise ValueError("alerter_api_key_file: the key must be at least 16 characters")
        return hashlib.sha256(key.encode()).digest() if key is not None else None
