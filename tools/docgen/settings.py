"""The configuration section: every environment variable of every service.

Read from the pydantic-settings classes themselves: the shared
:class:`flywheel.settings.ServiceSettings` once, then each service's own fields
(``services/<name>/src/<package>/config.py``, class ``Settings``). Secrets never show a
default value, whatever it is.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from flywheel.settings import ServiceSettings
from tools.docgen.fields import FieldDoc, field_docs
from tools.docgen.markdown import table

__all__ = ["env_names", "is_secret", "render_configuration", "service_settings", "settings_table"]

# A name that looks like it holds a credential hides its default even if not a SecretStr.
_SECRET_NAME = re.compile(r"(api_key|password|passwd|secret|token|webhook|credential)")


# Meanings of fields whose declaration carries no comment (the code's comment wins).
DESCRIPTIONS = {
    "kafka_bootstrap_servers": "The Kafka cluster (comma-separated host:port).",
    "kafka_replication_factor": "Replication factor of topics Flywheel creates (3 in production).",
    "topic_prefix": "Prepended to every topic: several deployments share one cluster.",
    "redis_url": "The Redis cache (`redis://`, `rediss://` or `unix://`).",
    "log_level": "Structured logs on stderr; secrets are redacted.",
    "log_format": "`json` for machines, `text` for people.",
    "instance_id": "This replica's name in heartbeats (default: host:pid).",
    "heartbeat_interval_s": "Seconds between heartbeats on services.heartbeats.",
    "ingest_host": "Address of /healthz and /metrics.",
    "trainer_host": "Address of /healthz and /metrics.",
    "predictor_host": "Address of the HTTP API.",
    "predictor_port": "Port of the HTTP API (0 = any free port).",
    "predictor_max_rows": "Rows per request.",
    "predictor_batch_requests": "Answer offline batches from predictions.requests.",
    "predictor_online_features": "Copy features.online into Redis for entity_id lookups.",
    "optimizer_host": "Address of /healthz, /metrics and /v1/recommendations.",
    "optimizer_port": "Port of /healthz, /metrics and /v1/recommendations.",
    "tick_s": "Evaluation and publication period.",
    "slot_s": "Window slot; must divide 60.",
    "lag_interval_s": "Consumer-lag measurement period.",
    "join_ttl_s": "How long a prediction waits for its label.",
    "join_max_waiting": "Most predictions waiting for a label at once.",
    "max_series": "Cap on tracked series.",
    "rule_stale_s": "An alert with no data this long resolves (must exceed tick_s).",
    "drift_detector": "Drift detector on the live error stream.",
    "drift_adwin_delta": "ADWIN sensitivity.",
    "drift_ph_threshold": "Page-Hinkley threshold.",
    "drift_quiet_s": "A drift alert resolves after this long without a new detection",
    "drift_min_samples_after": "and at least this many labels since the last detection.",
    "latency_budget_ms": "p99 budget for advice.",
    "min_cache_hit_rate": "Below it the prediction cache is not worth its round trip.",
    "batch_min_throughput_per_s": "Above it, advice suggests the batch endpoint.",
    "rss_budget_bytes": "Memory budget for advice.",
    "ingest_lag_threshold": "Consumer lag (records) above which ingest is flagged.",
    "advice_min_samples": "Evidence needed before any advice.",
    "alerter_config_file": "Routing and receivers YAML (unset: log receiver only).",
    "alerter_http_host": "Address of the HTTP API.",
    "alerter_http_port": "Port of the HTTP API.",
    "alerter_consumer_group": "Consumer group on alerts.",
    "alerter_api_key_file": "File holding the API key (instead of FLYWHEEL_ALERTER_API_KEY).",
    "alerter_api_key_sha256": "Only the key's SHA-256 hex (instead of the key itself).",
    "alerter_shutdown_grace_s": "How long SIGTERM waits for deliveries in flight.",
}


_HEADER = ["variable", "type", "default", "allowed", "meaning"]


def is_secret(name: str, info: FieldInfo) -> bool:
    return "SecretStr" in repr(info.annotation) or bool(_SECRET_NAME.search(name))


def service_settings(root: Path) -> list[tuple[str, type[BaseSettings]]]:
    """``(service, Settings)`` for every ``services/*/src/*/config.py``, sorted by service."""
    found = []
    for config in sorted(root.glob("services/*/src/*/config.py")):
        module = importlib.import_module(f"{config.parent.name}.config")
        found.append((config.parents[2].name, module.Settings))
    return found


def env_names(settings: type[BaseSettings], name: str) -> list[str]:
    info = settings.model_fields[name]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    prefix = str(settings.model_config.get("env_prefix", ""))
    return [(prefix + name).upper()]


def settings_table(settings: type[BaseSettings], names: set[str]) -> str:
    """The table of ``settings``' fields named in ``names``, in declaration order."""
    docs = field_docs(settings, secret=is_secret)
    return table(_HEADER, [_row(settings, d) for d in docs if d.name in names])


def _row(settings: type[BaseSettings], doc: FieldDoc) -> list[str]:
    meaning = doc.description or DESCRIPTIONS.get(doc.name, "")
    variables = " / ".join(f"`{n}`" for n in env_names(settings, doc.name))
    return [variables, doc.type, doc.default, doc.constraints, meaning]


def render_configuration(root: Path) -> str:
    shared = set(ServiceSettings.model_fields)
    out = [
        "Shared by every service (`flywheel.settings.ServiceSettings`):\n",
        settings_table(ServiceSettings, shared),
    ]
    for service, settings in service_settings(root):
        own = set(settings.model_fields) - shared
        # A service that narrows a shared field (another default) lists it again.
        own |= {
            n
            for n in shared
            if repr(settings.model_fields[n]) != repr(ServiceSettings.model_fields[n])
        }
        out.append(f"\n**{service}** (`{settings.__module__}.{settings.__name__}`):\n")
        out.append(settings_table(settings, own))
    return "\n".join(out)
