"""The predictor's settings (env prefix ``FLYWHEEL_``, e.g. ``FLYWHEEL_PREDICTOR_PORT``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from flywheel.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    # Every Redis key the predictor touches starts with this (shared layout: flywheel:).
    redis_key_prefix: str = Field(default="flywheel:", pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    predictor_host: str = "127.0.0.1"
    predictor_port: int = Field(default=18080, ge=0, le=65535)
    # Optional: a JSON file of hashed, task-scoped API keys (docs/predictor.md). Unset = open.
    predictor_api_keys_file: Path | None = None
    # Redis calls on the hot path fail fast: a slow cache must never slow a prediction.
    predictor_redis_timeout_ms: float = Field(default=100.0, gt=0, le=5_000)
    # After a Redis error the hot path skips Redis this long while a probe checks it.
    predictor_redis_retry_s: float = Field(default=0.5, gt=0, le=60)
    # Prediction cache TTL; 0 turns the cache off.
    predictor_cache_ttl_s: int = Field(default=60, ge=0, le=86_400)
    # Only predictions that cost more than this to compute (or explain=true) use the
    # cache: for a small model a Redis round trip is slower than scoring. 0 = always.
    predictor_cache_min_row_cost_us: float = Field(default=100.0, ge=0, le=1_000_000)
    predictor_max_rows: int = Field(default=10_000, ge=1, le=100_000)
    # predictions.log is sent from a bounded queue; overflow is counted, never blocks.
    predictor_log_queue_size: int = Field(default=50_000, ge=100, le=10_000_000)
    predictor_batch_requests: bool = True
    # Consumer group of every replica answering predictions.requests, prefixed with the
    # topic prefix.
    predictor_batch_group_id: str = Field(
        default="flywheel-predictor-batch", pattern=r"^[A-Za-z0-9._-]{1,200}$"
    )
    predictor_online_features: bool = True
    # Seconds between heartbeats on services.heartbeats (RSS, CPU, request counts).
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)

    @field_validator("predictor_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("predictor_api_keys_file")
    @classmethod
    def _keys_file(cls, value: Path | None) -> Path | None:
        # A configured but missing key file must stop start-up: serving open by
        # accident is the unsafe failure.
        if value is not None and not value.is_file():
            raise ValueError(f"{value} does not exist or is not a file")
        return value
