"""Email over SMTP with aiosmtplib: implicit TLS, STARTTLS, or plain for a local relay.

Every piece of alert text is HTML-escaped in the HTML part; the subject is forced onto
one line so a label cannot inject headers. ``Message-ID`` is derived from the
idempotency key, so a resend after a restart is recognisably the same message.
"""

from __future__ import annotations

import html
from email.message import EmailMessage

import aiosmtplib

from alerter.receivers.base import PermanentDeliveryError, RetryableDeliveryError, scrub
from alerter.receivers.config import EmailReceiverConfig
from alerter.receivers.render import alert_summary, state_word, title
from alerter.state import NotificationIntent

__all__ = ["EmailReceiver", "email_message"]


def email_message(intent: NotificationIntent, sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = title(intent)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Message-ID"] = f"<{intent.idempotency_key}@flywheel-alerter>"
    message["X-Flywheel-Idempotency-Key"] = intent.idempotency_key
    lines = [title(intent), ""]
    rows = []
    for alert in intent.alerts:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        lines.append(f"{state_word(alert)} {alert.name} ({alert.severity.value})")
        lines.append(f"  {alert_summary(alert)}")
        lines.append(f"  {labels}")
        rows.append(
            "<tr>"
            f"<td>{html.escape(state_word(alert))}</td>"
            f"<td>{html.escape(alert.name)}</td>"
            f"<td>{html.escape(alert.severity.value)}</td>"
            f"<td>{html.escape(alert_summary(alert))}</td>"
            f"<td>{html.escape(labels)}</td>"
            "</tr>"
        )
    message.set_content("\n".join(lines) + "\n")
    message.add_alternative(
        "<html><body>"
        f"<h2>{html.escape(title(intent))}</h2>"
        '<table border="1" cellpadding="4">'
        "<tr><th>state</th><th>alert</th><th>severity</th><th>summary</th><th>labels</th></tr>"
        + "".join(rows)
        + "</table></body></html>",
        subtype="html",
    )
    return message


class EmailReceiver:
    kind = "email"

    def __init__(self, config: EmailReceiverConfig) -> None:
        self.name = config.name
        self.rate_key = f"email:{config.smtp_host}:{config.smtp_port}"
        self.rate_per_s = config.rate_per_s
        self.max_attempts = config.max_attempts
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self._config = config

    async def send(self, intent: NotificationIntent) -> int:
        cfg = self._config
        password = cfg.password.get_secret_value() if cfg.password else None
        message = email_message(intent, cfg.from_, cfg.to)
        try:
            await aiosmtplib.send(
                message,
                hostname=cfg.smtp_host,
                port=cfg.smtp_port,
                username=cfg.username,
                password=password,
                use_tls=cfg.security == "tls",
                start_tls=cfg.security == "starttls",
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(
                scrub(f"email receiver {self.name}: recipients refused: {exc}", password or ""),
                reason="rejected",
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            text = scrub(
                f"email receiver {self.name}: SMTP {exc.code} {exc.message}", password or ""
            )
            # 4xx replies are transient by SMTP's own definition; 5xx are final.
            if 400 <= exc.code < 500:
                raise RetryableDeliveryError(
                    text, reason="smtp_transient", status_code=exc.code
                ) from exc
            raise PermanentDeliveryError(text, reason="rejected", status_code=exc.code) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            text = scrub(f"email receiver {self.name}: {type(exc).__name__}: {exc}", password or "")
            raise RetryableDeliveryError(text, reason="network") from exc
        return 250
