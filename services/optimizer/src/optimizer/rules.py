"""Threshold rules from YAML, evaluated against the tracker's samples.

A rule file looks like::

    rules:
      - name: PredictionLatencyHigh      # the alert name
        metric: latency_p99_ms           # a tracker metric (see optimizer.tracker) ...
        # gauge: queue_depth             # ... or a heartbeat gauge, never both
        window: 5m                       # 1m | 5m | 1h
        op: ">"                          # > >= < <=
        threshold: 250
        for_s: 30                        # must hold this long before it fires
        min_samples: 20                  # ignore values resting on less evidence
        task: daisy-chain.task-success   # optional: only this task (or service:)
        severity: warning                # critical | warning | info
        labels: {team: ml-platform}
        annotations: {summary: "p99 {value:.0f} ms over {threshold} ms"}

Each sample the rule matches is its own alert (labels: the rule's, plus ``task`` /
``service`` / the sample's own labels and ``window``). It fires once the condition has
held ``for_s`` seconds and resolves when a later sample no longer meets it, or when the
series has had no samples for ``stale_s`` (the task or service is gone).
Errors in the file name the failing field (``rules.2.window: ...``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flywheel.errors import ConfigError
from flywheel.events import AlertSeverity, alert_fingerprint
from flywheel.serde import validation_error_message
from optimizer.alerts import AlertBook
from optimizer.tracker import MetricSample

__all__ = ["KNOWN_METRICS", "RuleEvaluator", "RuleFile", "ThresholdRule", "load_rules"]

KNOWN_METRICS = frozenset(
    {
        "predictions",
        "throughput_per_s",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "cache_hit_rate",
        "cached_latency_p50_ms",
        "uncached_latency_p50_ms",
        "labeled",
        "live_accuracy",
        "live_mae",
        "live_rmse",
        "model_error_rate",
        "baseline_error_rate",
        "baseline_accuracy",
        "rss_bytes",
        "cpu_percent",
        "error_rate",
        "consumer_lag",
    }
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$"
LabelKey = Annotated[str, Field(pattern=_NAME)]


class ThresholdRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    metric: str | None = None
    gauge: str | None = Field(default=None, pattern=_NAME)
    window: Literal["1m", "5m", "1h"] = "5m"
    op: Literal[">", ">=", "<", "<="]
    threshold: float = Field(allow_inf_nan=False)
    for_s: float = Field(default=0.0, ge=0, le=86_400)
    min_samples: int = Field(default=1, ge=1)
    task: str | None = None
    service: str | None = None
    severity: AlertSeverity = AlertSeverity.WARNING
    # Keys follow Prometheus label names and values fit an Alert's, so firing can't fail.
    labels: dict[LabelKey, Annotated[str, Field(max_length=128)]] = Field(default_factory=dict)
    annotations: dict[LabelKey, Annotated[str, Field(max_length=2_048)]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.metric is None) == (self.gauge is None):
            raise ValueError("give exactly one of metric (a tracker metric) or gauge")
        if self.metric is not None and self.metric not in KNOWN_METRICS:
            raise ValueError(
                f"metric {self.metric!r} is not one the optimizer computes; "
                f"known: {', '.join(sorted(KNOWN_METRICS))}"
            )
        return self

    @property
    def series(self) -> str:
        return self.metric or self.gauge or ""

    def matches(self, sample: MetricSample) -> bool:
        return (
            sample.name == self.series
            and sample.window == self.window
            and (self.task is None or sample.task == self.task)
            and (self.service is None or sample.service == self.service)
            # Heartbeat gauges only exist per service; a task metric never matches one.
            and (self.gauge is None or sample.service is not None)
            and sample.samples >= self.min_samples
        )

    def breached(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[ThresholdRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[tuple[str, str, str | None, str | None]] = set()
        for rule in self.rules:
            key = (rule.name, rule.window, rule.task, rule.service)
            if key in seen:
                raise ValueError(f"rule {rule.name!r} is defined twice for the same scope")
            seen.add(key)
        return self


def load_rules(path: Path) -> RuleFile:
    """Parse and validate a rule file; :class:`ConfigError` names the failing field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"rules file {path}: {exc}") from exc
    try:
        return RuleFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"rules file {path}: {validation_error_message(exc)}") from exc


@dataclass
class _Pending:
    since: float
    last_seen: float
    fingerprint: str | None = None


class RuleEvaluator:
    def __init__(self, rules: RuleFile, book: AlertBook, *, stale_s: float = 600.0) -> None:
        self.rules = rules
        self._book = book
        self._stale_s = stale_s
        # Per (rule, series key): since when the condition holds, and its alert if firing.
        self._state: dict[tuple[int, tuple[str, ...]], _Pending] = {}
        self._started: float | None = None

    def evaluate(self, samples: list[MetricSample], now: float) -> None:
        at = datetime.fromtimestamp(now, UTC)
        for index, rule in enumerate(self.rules.rules):
            for sample in samples:
                if not rule.matches(sample):
                    continue
                key = (index, sample.key())
                state = self._state.get(key)
                if not rule.breached(sample.value):
                    if state is not None:
                        self._clear(key, state, at, f"{sample.value:g}")
                    else:
                        # Fired before a restart (restored from the alerts topic) and
                        # cleared while the optimizer was down.
                        fingerprint = alert_fingerprint(rule.name, _labels(rule, sample))
                        self._book.resolve(
                            fingerprint, at=at, annotations={"resolved_value": f"{sample.value:g}"}
                        )
                    continue
                if state is None:
                    state = self._state[key] = _Pending(since=now, last_seen=now)
                state.last_seen = now
                if state.fingerprint is None and now - state.since >= rule.for_s:
                    alert = self._book.fire(
                        rule.name,
                        severity=rule.severity,
                        labels=_labels(rule, sample),
                        annotations=_annotations(rule, sample),
                        at=at,
                    )
                    # Already firing (restored after a restart): adopt it.
                    state.fingerprint = (
                        alert.fingerprint
                        if alert
                        else alert_fingerprint(rule.name, _labels(rule, sample))
                    )
        for key, state in list(self._state.items()):
            if now - state.last_seen >= self._stale_s:
                self._clear(key, state, at, "no data")
        self._resolve_orphans(now, at)

    def _resolve_orphans(self, now: float, at: datetime) -> None:
        """Restored alerts of these rules whose series never came back resolve as stale."""
        if self._started is None:
            self._started = now
        if now - self._started < self._stale_s:
            return
        names = {rule.name for rule in self.rules.rules}
        tracked = {state.fingerprint for state in self._state.values()}
        for alert in self._book.firing():
            if alert.name in names and alert.fingerprint not in tracked:
                self._book.resolve(
                    alert.fingerprint, at=at, annotations={"resolved_value": "no data"}
                )

    def _clear(
        self, key: tuple[int, tuple[str, ...]], state: _Pending, at: datetime, value: str
    ) -> None:
        del self._state[key]
        if state.fingerprint is not None:
            self._book.resolve(state.fingerprint, at=at, annotations={"resolved_value": value})


def _labels(rule: ThresholdRule, sample: MetricSample) -> dict[str, str]:
    labels = {**rule.labels, **sample.labels, "window": sample.window}
    if sample.task:
        labels["task"] = sample.task
    if sample.service:
        labels["service"] = sample.service
    return labels


def _annotations(rule: ThresholdRule, sample: MetricSample) -> dict[str, str]:
    values = {
        "value": sample.value,
        "threshold": rule.threshold,
        "task": sample.task or "",
        "service": sample.service or "",
        "window": sample.window,
    }
    out = {
        "rule": f"{rule.series} {rule.op} {rule.threshold:g} over {rule.window}",
        "value": f"{sample.value:.6g}",
        "samples": str(sample.samples),
    }
    for name, template in rule.annotations.items():
        try:
            out[name] = template.format(**values)[:4_096]
        except (KeyError, ValueError, IndexError, AttributeError):
            out[name] = template  # a bad placeholder must not hide the alert
    return out
