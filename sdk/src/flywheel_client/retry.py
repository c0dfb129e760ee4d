"""How long to wait between attempts, and which answers deserve another attempt.

Backoff is exponential with full jitter (AWS architecture blog, "Exponential Backoff
and Jitter"): many clients retrying after one outage spread out instead of arriving
together. A ``Retry-After`` from the server wins over the computed delay; either way
no wait may cross the caller's deadline, so the total timeout is never exceeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RetryPolicy", "parse_retry_after", "retryable_status"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries`` attempts after the first; delays in seconds."""

    max_retries: int = 2
    backoff_base_s: float = 0.05
    backoff_max_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("retry settings must be >= 0")

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry_after_s is not None:
            return retry_after_s
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not security


def retryable_status(status: int) -> bool:
    """5xx and 429 may succeed on another attempt; other 4xx never will."""
    return status == 429 or status >= 500


def parse_retry_after(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or bad."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
