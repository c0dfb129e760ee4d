"""Receivers: Slack, email, PagerDuty, signed webhooks and the service log."""

from __future__ import annotations

import logging

import httpx

from alerter.receivers.base import (
    DeliveryError,
    PermanentDeliveryError,
    Receiver,
    RetryableDeliveryError,
    TargetGuard,
)
from alerter.receivers.config import (
    EmailReceiverConfig,
    LogReceiverConfig,
    PagerDutyReceiverConfig,
    ReceiverConfig,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alerter.receivers.email import EmailReceiver
from alerter.receivers.pagerduty import PagerDutyReceiver
from alerter.receivers.slack import SlackReceiver
from alerter.receivers.webhook import WebhookReceiver
from alerter.state import NotificationIntent

__all__ = [
    "DeliveryError",
    "LogReceiver",
    "PermanentDeliveryError",
    "Receiver",
    "RetryableDeliveryError",
    "TargetGuard",
    "build_receivers",
]

log = logging.getLogger("alerter.notifications")


class LogReceiver:
    kind = "log"

    def __init__(self, config: LogReceiverConfig) -> None:
        self.name = config.name
        self.rate_key = f"log:{config.name}"
        self.rate_per_s = config.rate_per_s
        self.max_attempts = config.max_attempts
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s

    async def send(self, intent: NotificationIntent) -> int:
        log.warning(
            "notification",
            extra={
                "receiver": self.name,
                "idempotency_key": intent.idempotency_key,
                "status": intent.status.value,
                "group_key": intent.group_key,
                "alerts": [f"{a.name}:{a.fingerprint}:{a.state.value}" for a in intent.alerts],
            },
        )
        return 0


def build_receivers(
    configs: list[ReceiverConfig], client: httpx.AsyncClient, guard: TargetGuard
) -> dict[str, Receiver]:
    receivers: dict[str, Receiver] = {}
    for config in configs:
        receiver: Receiver
        if isinstance(config, SlackReceiverConfig):
            receiver = SlackReceiver(config, client, guard)
        elif isinstance(config, PagerDutyReceiverConfig):
            receiver = PagerDutyReceiver(config, client, guard)
        elif isinstance(config, WebhookReceiverConfig):
            receiver = WebhookReceiver(config, client, guard)
        elif isinstance(config, EmailReceiverConfig):
            receiver = EmailReceiver(config)
        else:
            receiver = LogReceiver(config)
        receivers[config.name] = receiver
    return receivers
