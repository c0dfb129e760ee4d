"""What every receiver shares: the error hierarchy, the SSRF guard and HTTP classification.

Errors::

    DeliveryError                 a notification could not be delivered this time
    ├── RetryableDeliveryError    429, 5xx, network trouble: try again (``retry_after``)
    └── PermanentDeliveryError    4xx other than 429, refused target: park in alerts.dlq

Messages never contain a secret: receivers pass every string through
:func:`flywheel.logs.redact` and strip their own secret values before raising.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from alerter.state import NotificationIntent
from flywheel.logs import redact

__all__ = [
    "DeliveryError",
    "PermanentDeliveryError",
    "Receiver",
    "RetryableDeliveryError",
    "TargetGuard",
    "check_response",
    "parse_retry_after",
    "post",
    "scrub",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DeliveryError(Exception):
    def __init__(self, message: str, *, reason: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code


class RetryableDeliveryError(DeliveryError):
    def __init__(
        self,
        message: str,
        *,
        reason: str = "transient",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, status_code=status_code)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass


class Receiver(Protocol):
    """One configured receiver. ``rate_key`` names the rate-limit bucket it shares."""

    name: str
    kind: str
    rate_key: str
    rate_per_s: float
    max_attempts: int
    backoff_initial_s: float
    backoff_max_s: float

    async def send(self, intent: NotificationIntent) -> int:
        """Deliver ``intent``; return the status code that accepted it, or raise."""
        ...


def scrub(text: str, *secrets: str) -> str:
    """``text`` with every given secret and anything credential-shaped masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact(text)[:2_000]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def check_response(response: httpx.Response, what: str) -> int:
    """Return the status of an accepting response; raise the right DeliveryError if not."""
    status = response.status_code
    if 200 <= status < 300:
        return status
    if status == 429:
        raise RetryableDeliveryError(
            f"{what}: HTTP 429 (rate limited)",
            reason="rate_limited",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500 or status == 408:
        raise RetryableDeliveryError(
            f"{what}: HTTP {status}",
            reason="server_error",
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    body = redact(response.text[:300]) if response.text else ""
    raise PermanentDeliveryError(
        f"{what}: HTTP {status} {body}".strip(), reason="rejected", status_code=status
    )


class TargetGuard:
    """Refuses HTTP targets on loopback, private, link-local or otherwise internal
    addresses (SSRF), unless a configured network allows them.

    Names are resolved at send time and every address they resolve to is checked.
    """

    def __init__(self, allowed: list[Network]) -> None:
        self._allowed = allowed

    def _permitted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if any(address in net for net in self._allowed):
            return True
        return not (
            address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        )

    async def check(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise PermanentDeliveryError(
                "target URL must be http(s) with a host", reason="bad_target"
            )
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise RetryableDeliveryError(
                    f"cannot resolve target host: {exc.strerror}", reason="dns"
                ) from exc
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in addresses:
            if not self._permitted(address):
                raise PermanentDeliveryError(
                    f"target address {address} is internal (loopback/private/link-local); "
                    "allow it with allowed_target_networks",
                    reason="target_refused",
                )


async def post(
    client: httpx.AsyncClient,
    guard: TargetGuard,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout_s: float,
    what: str,
    secrets: tuple[str, ...] = (),
) -> int:
    """POST with the SSRF check, mapping transport failures to retryable errors."""
    await guard.check(url)
    try:
        response = await client.post(url, content=content, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryError(f"{what}: timed out", reason="timeout") from exc
    except httpx.TransportError as exc:
        message = scrub(f"{what}: {type(exc).__name__}: {exc}", url, *secrets)
        raise RetryableDeliveryError(message, reason="network") from exc
    return check_response(response, what)
