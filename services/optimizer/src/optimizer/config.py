"""The optimizer's settings (env prefix ``FLYWHEEL_``; see docs/optimizer.md for the table)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from flywheel.settings import ServiceSettings
from optimizer.advice import AdviceBudgets

__all__ = ["Settings"]


class Settings(ServiceSettings):
    optimizer_host: str = "127.0.0.1"
    optimizer_port: int = Field(default=19104, ge=1, le=65535)
    # Threshold rules; empty = the rules shipped with the optimizer (default_rules.yml).
    optimizer_rules_file: Path | None = None

    tick_s: float = Field(default=10.0, ge=0.2, le=300)
    slot_s: float = Field(default=5.0, ge=1, le=60)
    lag_interval_s: float = Field(default=15.0, ge=1, le=600)
    # How far back to re-read the inputs at start, so the windows come back after a restart.
    replay_s: float = Field(default=3600.0, ge=0, le=86_400)
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)

    join_ttl_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    join_max_waiting: int = Field(default=200_000, ge=100, le=10_000_000)
    max_series: int = Field(default=10_000, ge=10, le=1_000_000)
    rule_stale_s: float = Field(default=600.0, gt=0)

    drift_detector: Literal["adwin", "page_hinkley"] = "adwin"
    drift_adwin_delta: float = Field(default=0.002, gt=0, lt=1)
    drift_ph_threshold: float = Field(default=50.0, gt=0)
    drift_quiet_s: float = Field(default=600.0, gt=0)
    drift_min_samples_after: int = Field(default=100, ge=1)

    latency_budget_ms: float = Field(default=50.0, gt=0)
    min_cache_hit_rate: float = Field(default=0.05, ge=0, le=1)
    batch_min_throughput_per_s: float = Field(default=50.0, gt=0)
    rss_budget_bytes: int = Field(default=2 * 1024**3, gt=0)
    ingest_lag_threshold: int = Field(default=10_000, gt=0)
    advice_min_samples: int = Field(default=100, ge=1)

    @field_validator("slot_s")
    @classmethod
    def _slot_divides_windows(cls, value: float) -> float:
        if 60 % value:
            raise ValueError("must divide 60 so the 1m, 5m and 1h windows end on slot edges")
        return value

    @field_validator("optimizer_rules_file")
    @classmethod
    def _rules_exist(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @model_validator(mode="after")
    def _join_covers_window(self) -> Self:
        if self.tick_s > self.rule_stale_s:
            raise ValueError("rule_stale_s must be longer than tick_s, or every alert goes stale")
        return self

    def budgets(self) -> AdviceBudgets:
        return AdviceBudgets(
            latency_p99_ms=self.latency_budget_ms,
            min_cache_hit_rate=self.min_cache_hit_rate,
            batch_min_throughput_per_s=self.batch_min_throughput_per_s,
            rss_bytes=self.rss_budget_bytes,
            ingest_lag=self.ingest_lag_threshold,
            min_samples=self.advice_min_samples,
        )
