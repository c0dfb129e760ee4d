"""Trainer settings (env prefix ``FLYWHEEL_``; see docs/trainer.md)."""

from __future__ import annotations

from pydantic import Field

from flywheel.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    """Everything an operator can tune. Unsafe values are refused at start-up."""

    # /healthz and /metrics.
    trainer_port: int = Field(default=19102, ge=0, le=65_535)
    trainer_host: str = "127.0.0.1"
    # Prefix of every Redis key (the predictor reads the same layout: flywheel.registry).
    redis_key_prefix: str = Field(default="flywheel:", pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    # Consumer group of every trainer replica; training.batches partitions (and so
    # tasks, which are the keys) are split between them. Prefixed with the topic prefix.
    trainer_group_id: str = Field(default="flywheel-trainer", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    # Stem of the per-partition transactional ids
    # ("<prefix><stem>.training.batches.<partition>"), the same on every replica and
    # across restarts, so a new owner of a partition fences the zombie that held it.
    trainer_transactional_id: str = Field(
        default="flywheel-trainer", pattern=r"^[A-Za-z0-9._-]{1,200}$"
    )
    # A challenger is promoted when its loss on the next, unseen batch is at most
    # (1 + tolerance) x the champion's. 0 = strictly not worse.
    trainer_promotion_tolerance: float = Field(default=0.02, ge=0.0, le=0.5)
    # Versions kept in models.registry per task besides the champion and the versions
    # recent champion changes name (older ones are tombstoned so compaction drops them).
    trainer_keep_versions: int = Field(default=20, ge=2, le=10_000)
    # Training batches fetched per poll (bounds the work inside one transaction).
    trainer_max_poll_records: int = Field(default=200, ge=1, le=10_000)
    # Training batch records read back per partition on assignment to refill the
    # learners' replay windows (they were learned already; nothing is counted twice).
    trainer_replay_records: int = Field(default=100, ge=0, le=10_000)
    # Largest training batch message accepted (ingest keeps them under 1 MB).
    trainer_max_batch_bytes: int = Field(default=2_000_000, ge=10_000, le=16_000_000)
    # Seconds between checks that every champion's Redis keys are there (a cluster shard
    # restarted empty, an eviction); missing ones are rewritten and re-announced. 0 = off.
    trainer_cache_reconcile_s: float = Field(default=30.0, ge=0, le=3600)
    # Seconds between heartbeats on services.heartbeats (RSS, CPU, models, batches).
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)
