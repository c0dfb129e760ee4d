"""Structured (JSON-lines) logging with secret redaction, configured once per process."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["configure_logging", "redact"]

# Anything that looks like a credential in a URL or key=value pair is masked before
# a log line leaves the process: secrets must never reach a log file.
_SECRET_PATTERNS = (
    re.compile(r"(?P<pre>://[^:/@\s]+:)(?P<secret>[^@\s]+)(?=@)"),
    re.compile(
        r"(?P<pre>(?:password|passwd|secret|token|api[_-]?key|routing[_-]?key|authorization)"
        r"[\"']?\s*[=:]\s*[\"']?(?:Bearer\s+)?)(?P<secret>[^\s\"',;&]+)",
        re.IGNORECASE,
    ),
    re.compile(r"(?P<pre>hooks\.slack\.com/services/)(?P<secret>[A-Za-z0-9/]+)"),
)
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({})))


def redact(text: str) -> str:
    """Mask credentials in ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group("pre") + "***", text)
    return text


class _JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger to stderr in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(service))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every coordinator hiccup at ERROR/WARNING; keep them, but not INFO.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
