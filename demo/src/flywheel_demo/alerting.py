"""The routing the demo's alerter starts with: the drift alert to a webhook and to mail.

``ModelDriftDetected`` goes to both sinks (``continue: true`` on the first route);
anything else the optimizer raises goes to the alerter's log. Each alert is its own
group and ``group_wait`` is short, so a delivery follows the alert within a second or
two, as an on-call receiver would want for a drift.
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["DRIFT_ALERT", "HOOK_SECRET_ENV", "write_alerter_config"]

DRIFT_ALERT = "ModelDriftDetected"
# The webhook's HMAC secret reaches the alerter through its environment, never the file.
HOOK_SECRET_ENV = "FLYWHEEL_DEMO_HOOK_SECRET"  # noqa: S105 - a variable name, not a secret


def alerter_config(webhook_url: str, smtp_port: int) -> dict[str, object]:
    drift = [f'alertname="{DRIFT_ALERT}"']
    return {
        "route": {
            "receiver": "demo-log",
            "group_by": ["alertname", "task"],
            "group_wait": "0s",
            "group_interval": "2s",
            "repeat_interval": "1h",
            "routes": [
                {"matchers": drift, "receiver": "demo-webhook", "continue": True},
                {"matchers": drift, "receiver": "demo-mail"},
            ],
        },
        "receivers": [
            {"name": "demo-log", "type": "log"},
            {
                "name": "demo-webhook",
                "type": "webhook",
                "url": webhook_url,
                "hmac_secret_env": HOOK_SECRET_ENV,
                "backoff_initial_s": 0.2,
                "backoff_max_s": 2,
            },
            {
                "name": "demo-mail",
                "type": "email",
                "to": ["ml-oncall@demo.flywheel.invalid"],
                "from": "alerter@demo.flywheel.invalid",
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp_port,
                "security": "none",
                "backoff_initial_s": 0.2,
                "backoff_max_s": 2,
            },
        ],
        "allowed_target_networks": ["127.0.0.1/32"],
    }


def write_alerter_config(path: Path, webhook_url: str, smtp_port: int) -> Path:
    path.write_text(yaml.safe_dump(alerter_config(webhook_url, smtp_port), sort_keys=False))
    return path
