"""Flywheel's alerter: routes, groups, silences and delivers alerts exactly once per
receiver (Slack, email, PagerDuty, signed webhooks). Run with ``python -m alerter``;
see docs/alerter.md. An app, not a library: nothing here is imported by other services."""
