"""stream-ingest settings (env prefix ``FLYWHEEL_``; see docs/stream-ingest.md)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from flywheel.kafka import MAX_MESSAGE_BYTES
from flywheel.serde import DEFAULT_MAX_EVENT_BYTES
from flywheel.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    """Everything an operator can tune. Unsafe values are refused at start-up."""

    # /healthz and /metrics.
    ingest_port: int = Field(default=19101, ge=1, le=65_535)
    heartbeat_interval_s: float = Field(default=5.0, gt=0, le=300)
    ingest_host: str = "127.0.0.1"
    # Consumer group of every stream-ingest replica; partitions are split between them.
    # Prefixed with the topic prefix.
    ingest_group_id: str = Field(
        default="flywheel.stream-ingest", pattern=r"^[A-Za-z0-9._-]{1,200}$"
    )
    # Stem of the per-partition transactional ids ("<prefix><stem>.<partition>"). It must
    # be the same for every replica and across restarts: a restarted owner of partition 3
    # then reuses "<prefix><stem>.3" and fences the zombie that held it.
    ingest_transactional_id: str = Field(
        default="flywheel.stream-ingest", pattern=r"^[A-Za-z0-9._-]{1,200}$"
    )
    # Largest feedback event accepted; bigger ones go to the DLQ as ``oversized``.
    ingest_max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1_024, le=900_000)
    # Most recent accepted event ids remembered per partition for de-duplication.
    ingest_dedup_window: int = Field(default=100_000, ge=1_000, le=5_000_000)
    # Largest training batch message; batches are split below it (broker limit 1 MB).
    ingest_max_batch_bytes: int = Field(default=900_000, ge=10_000, le=MAX_MESSAGE_BYTES)
    # Rejected events wait at most this long before their DLQ records are committed.
    ingest_dlq_max_age_s: float = Field(default=1.0, gt=0, le=60)
    # Records fetched per poll; bounds the work between two flush checks.
    ingest_max_poll_records: int = Field(default=5_000, ge=1, le=100_000)
    # A partition whose previous commit is still in flight keeps consuming up to this
    # many buffered events, then pauses. Larger = more events per transaction when the
    # broker is slow to commit (throughput), at the cost of memory.
    ingest_max_buffered_events: int = Field(default=20_000, ge=100, le=1_000_000)

    @model_validator(mode="after")
    def _one_event_fits_a_batch(self) -> Self:
        # Splitting stops at one event; a single event must therefore fit a batch message.
        if self.ingest_max_event_bytes * 2 > self.ingest_max_batch_bytes:
            raise ValueError(
                "ingest_max_event_bytes must be at most half of ingest_max_batch_bytes "
                "(a batch message holds at least one event plus its columns)"
            )
        return self
