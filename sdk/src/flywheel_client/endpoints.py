"""Several predictor replicas behind one client: which to ask first, which next.

A prediction is a read, so it may be asked again of another replica. The pool
spreads calls round-robin over the endpoints and, when one fails (connection refused,
timeout, 5xx, 429), puts it at the back of the queue for ``cooldown_s``: the calls
that follow start with a replica that answers instead of paying for the failure
again. A cooling endpoint is still tried when every other one failed as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["EndpointPool", "normalise_endpoints"]


def normalise_endpoints(base_url: str | Sequence[str]) -> tuple[str, ...]:
    """One or several ``http(s)://host:port`` base URLs, without trailing slashes.

    ValueError names the bad entry: an empty list, a non-HTTP scheme, no host, or the
    same endpoint twice (it would get twice the share of calls and of retries).
    """
    raw = [base_url] if isinstance(base_url, str) else list(base_url)
    if not raw:
        raise ValueError("base_url: at least one endpoint is required")
    endpoints: list[str] = []
    for index, url in enumerate(raw):
        name = "base_url" if isinstance(base_url, str) else f"base_url[{index}]"
        if not isinstance(url, str):
            raise ValueError(f"{name}: expected a URL string, got {type(url).__name__}")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{name}: {url!r} is not an http(s)://host[:port] URL")
        endpoint = url.strip().rstrip("/")
        if endpoint in endpoints:
            raise ValueError(f"{name}: {url!r} is listed twice")
        endpoints.append(endpoint)
    return tuple(endpoints)


class EndpointPool:
    """Round-robin over ``endpoints``, failed ones last until their cooldown ends.

    Times are the caller's monotonic clock (``loop.time()``), so tests pass their own.
    """

    def __init__(self, endpoints: Sequence[str], *, cooldown_s: float = 1.0) -> None:
        if not endpoints:
            raise ValueError("endpoints: at least one is required")
        if cooldown_s < 0:
            raise ValueError("endpoint_cooldown_s must be >= 0")
        self.endpoints = tuple(endpoints)
        self.cooldown_s = cooldown_s
        self._turn = 0
        self._down_until: dict[str, float] = {}

    def order(self, now: float) -> list[str]:
        """The endpoints in the order one call should try them."""
        start = self._turn % len(self.endpoints)
        self._turn += 1
        rotated = self.endpoints[start:] + self.endpoints[:start]
        up = [e for e in rotated if self._down_until.get(e, 0.0) <= now]
        cooling = sorted(
            (e for e in rotated if self._down_until.get(e, 0.0) > now),
            key=lambda e: self._down_until[e],
        )
        return up + cooling

    def failed(self, endpoint: str, now: float) -> None:
        self._down_until[endpoint] = now + self.cooldown_s

    def answered(self, endpoint: str) -> None:
        self._down_until.pop(endpoint, None)
