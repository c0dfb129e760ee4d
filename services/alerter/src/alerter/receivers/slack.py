"""Slack incoming webhooks with Block Kit.

Label and annotation text is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so an
alert cannot smuggle in ``<!channel>`` pings or fake links.
"""

from __future__ import annotations

import httpx
import orjson

from alerter.receivers.base import TargetGuard, post
from alerter.receivers.config import SlackReceiverConfig
from alerter.receivers.render import alert_summary, state_word, title
from alerter.state import NotificationIntent

__all__ = ["SlackReceiver", "escape_mrkdwn", "slack_payload"]

# Slack limits: 50 blocks per message, 3000 characters per section, 150 per header.
MAX_ALERT_BLOCKS = 20
SECTION_LIMIT = 2_900


def escape_mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(intent: NotificationIntent) -> dict[str, object]:
    heading = title(intent)
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150]}}
    ]
    for alert in intent.alerts[:MAX_ALERT_BLOCKS]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        text = (
            f"*{state_word(alert)}* `{escape_mrkdwn(alert.name)}` "
            f"({alert.severity.value})\n{escape_mrkdwn(alert_summary(alert))}\n"
            f"_{escape_mrkdwn(labels)}_"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}})
    hidden = len(intent.alerts) - MAX_ALERT_BLOCKS
    if hidden > 0:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {hidden} more"}]}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"flywheel alerter · {intent.idempotency_key}"}
            ],
        }
    )
    # ``text`` is the notification fallback (push notifications, old clients).
    return {"text": escape_mrkdwn(heading), "blocks": blocks}


class SlackReceiver:
    kind = "slack"

    def __init__(
        self, config: SlackReceiverConfig, client: httpx.AsyncClient, guard: TargetGuard
    ) -> None:
        self.name = config.name
        self.rate_key = "slack:" + config.webhook_url.get_secret_value()
        self.rate_per_s = config.rate_per_s
        self.max_attempts = config.max_attempts
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._config = config
        self._client = client
        self._guard = guard

    async def send(self, intent: NotificationIntent) -> int:
        url = self._config.webhook_url.get_secret_value()
        return await post(
            self._client,
            self._guard,
            url,
            content=orjson.dumps(slack_payload(intent)),
            headers={"Content-Type": "application/json"},
            timeout_s=self._config.timeout_s,
            what=f"slack receiver {self.name}",
            secrets=(url,),
        )
