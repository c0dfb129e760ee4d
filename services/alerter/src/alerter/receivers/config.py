"""Receiver settings as they appear under ``receivers:`` in the alerter's YAML.

Every secret (Slack webhook URL, SMTP password, PagerDuty routing key, webhook HMAC
secret) can be given three ways, exactly one at a time: inline (``routing_key``), as
a file (``routing_key_file``, e.g. a Docker/Kubernetes secret) or as the name of an
environment variable (``routing_key_env``). It is held as ``SecretStr`` so it never
appears in a repr, a log line or an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "EmailReceiverConfig",
    "LogReceiverConfig",
    "PagerDutyReceiverConfig",
    "ReceiverConfig",
    "SlackReceiverConfig",
    "WebhookReceiverConfig",
]

ReceiverName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class _ReceiverBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    _secrets: ClassVar[tuple[str, ...]] = ()

    name: ReceiverName
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    backoff_max_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _load_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for secret in cls._secrets:
            given = [k for k in (secret, f"{secret}_file", f"{secret}_env") if k in data]
            if len(given) > 1:
                raise ValueError(f"{secret}: give only one of {', '.join(given)}")
            if f"{secret}_file" in data:
                path = Path(str(data.pop(f"{secret}_file")))
                try:
                    data[secret] = path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{secret}_file: cannot read {path}: {exc.strerror}") from exc
            elif f"{secret}_env" in data:
                var = str(data.pop(f"{secret}_env"))
                value = os.environ.get(var)
                if not value:
                    raise ValueError(f"{secret}_env: environment variable {var} is not set")
                data[secret] = value
        return data

    @property
    def kind(self) -> str:
        return str(getattr(self, "type"))  # noqa: B009 - every subclass declares it


class SlackReceiverConfig(_ReceiverBase):
    """A Slack incoming webhook; the URL itself is the credential."""

    _secrets = ("webhook_url",)
    type: Literal["slack"]
    webhook_url: SecretStr
    # Slack allows about one message per second per incoming webhook.
    rate_per_s: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _https(self) -> SlackReceiverConfig:
        if not self.webhook_url.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("webhook_url: must be an http(s) URL")
        return self


class EmailReceiverConfig(_ReceiverBase):
    """Email over SMTP (aiosmtplib): implicit TLS, STARTTLS or (loopback only) plain."""

    _secrets = ("password",)
    type: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")]] = Field(min_length=1)
    from_: Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")] = Field(alias="from")
    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    # Sending a password over an unencrypted connection is refused unless set here.
    allow_plaintext_auth: bool = False
    rate_per_s: float = Field(default=5.0, gt=0, le=1000)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _safe_auth(self) -> EmailReceiverConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username/password: give both or neither")
        if self.password is not None and self.security == "none" and not self.allow_plaintext_auth:
            raise ValueError(
                "security: 'none' would send the SMTP password in clear text; use "
                "starttls or tls (or set allow_plaintext_auth: true for a local relay)"
            )
        return self


class PagerDutyReceiverConfig(_ReceiverBase):
    """PagerDuty Events API v2."""

    _secrets = ("routing_key",)
    type: Literal["pagerduty"]
    routing_key: SecretStr
    url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str = Field(default="flywheel", max_length=255)
    # PagerDuty throttles around 120 events per minute per routing key.
    rate_per_s: float = Field(default=2.0, gt=0, le=100)


class WebhookReceiverConfig(_ReceiverBase):
    """A generic JSON webhook signed with HMAC-SHA256."""

    _secrets = ("hmac_secret",)
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    hmac_secret: SecretStr
    rate_per_s: float = Field(default=10.0, gt=0, le=1000)

    @model_validator(mode="after")
    def _strong_secret(self) -> WebhookReceiverConfig:
        if len(self.hmac_secret.get_secret_value()) < 16:
            raise ValueError("hmac_secret: must be at least 16 characters")
        return self


class LogReceiverConfig(_ReceiverBase):
    """Writes notifications to the alerter's own log (the default when no config file is
    given, so a bare ``python -m alerter`` still accounts for every alert)."""

    type: Literal["log"]
    rate_per_s: float = Field(default=100.0, gt=0, le=10_000)


ReceiverConfig = Annotated[
    SlackReceiverConfig
    | EmailReceiverConfig
    | PagerDutyReceiverConfig
    | WebhookReceiverConfig
    | LogReceiverConfig,
    Field(discriminator="type"),
]
