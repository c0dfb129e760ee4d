"""The optimizer without I/O: events in, metrics, alerts and advice out, in virtual time.

:class:`OptimizerCore` is driven by the service with decoded events and the wall
clock, and by the unit tests with a clock of their own; every decision (which alert
fires or resolves, which advice stands) is made here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

from flywheel.events import (
    AlertSeverity,
    FeedbackEvent,
    Heartbeat,
    ModelPublished,
    PerformanceMetric,
    PredictionLog,
    alert_fingerprint,
)
from optimizer.advice import AdviceBudgets, ChampionFacts, Recommendation, recommend
from optimizer.alerts import AlertBook
from optimizer.drift import DriftWatch
from optimizer.exporter import OptimizerMetrics
from optimizer.rules import RuleEvaluator, RuleFile
from optimizer.tracker import JudgedLabel, MetricSample, PerformanceTracker, ShapeLookup

__all__ = ["DRIFT_ALERT", "OptimizerCore"]

log = logging.getLogger(__name__)

DRIFT_ALERT = "ModelDriftDetected"
ChampionLookup = Callable[[], list[ChampionFacts]]


class OptimizerCore:
    def __init__(
        self,
        *,
        rules: RuleFile,
        tracker: PerformanceTracker,
        drift: DriftWatch,
        budgets: AdviceBudgets,
        metrics: OptimizerMetrics,
        champions: ChampionLookup = list,
        rule_stale_s: float = 600.0,
    ) -> None:
        self.tracker = tracker
        self.book = AlertBook()
        self.rules = RuleEvaluator(rules, self.book, stale_s=rule_stale_s)
        self.drift = drift
        self.budgets = budgets
        self.metrics = metrics
        self._champions = champions
        self.samples: list[MetricSample] = []
        self.recommendations: list[Recommendation] = []
        self._advised_since: dict[tuple[str, str], datetime] = {}
        self._dropped_exported: dict[str, int] = {}

    @classmethod
    def with_defaults(cls, rules: RuleFile, shape_of: ShapeLookup | None = None) -> OptimizerCore:
        tracker = PerformanceTracker(shape_of=shape_of) if shape_of else PerformanceTracker()
        return cls(
            rules=rules,
            tracker=tracker,
            drift=DriftWatch(),
            budgets=AdviceBudgets(),
            metrics=OptimizerMetrics(),
        )

    # -- events ----------------------------------------------------------------------

    def on_prediction(self, prediction: PredictionLog, now: float) -> None:
        self._judged(self.tracker.observe_prediction(prediction, now), now)

    def on_feedback(self, event: FeedbackEvent, now: float) -> None:
        self._judged(self.tracker.observe_feedback(event, now), now)

    def _judged(self, judged: JudgedLabel | None, at: float) -> None:
        if judged is None:
            return
        self.metrics.joined.inc()
        # Drift's quiet period runs on the clock the labels were judged at.
        detection = self.drift.update(judged.task, judged.outcome.error, at)
        if detection is None:
            return
        self.metrics.drift.labels(task=judged.task).inc()
        # The task and the numbers in the message too: text logs drop the extras.
        log.warning(
            "drift detected on %s: error %.3g -> %.3g (%s, model v%d)",
            judged.task,
            detection.error_before,
            detection.error_recent,
            detection.detector,
            judged.version,
            extra={"task": judged.task, "detector": detection.detector},
        )
        self.book.fire(
            DRIFT_ALERT,
            severity=AlertSeverity.WARNING,
            labels={"task": judged.task},
            annotations={
                "summary": f"the error rate of {judged.task} changed "
                f"({detection.error_before:.3g} -> {detection.error_recent:.3g})",
                "detector": detection.detector,
                "error_before": f"{detection.error_before:.6g}",
                "error_recent": f"{detection.error_recent:.6g}",
                "samples": str(detection.samples),
                "model_version": str(judged.version),
            },
            at=datetime.fromtimestamp(at, UTC),
        )

    def on_heartbeat(self, beat: Heartbeat, now: float) -> None:
        self.tracker.observe_heartbeat(beat, now)

    def on_published(self, published: ModelPublished, now: float) -> None:
        """A new champion: the loop reacted, so a drift alert on the task resolves.

        The task's drift detector keeps its history across routine promotions and
        restarts only when this champion answers an open drift (see optimizer.drift).
        The book is resolved either way: after a restart it may hold an alert restored
        from before, which the detector never saw.
        """
        self.drift.promoted(published.task)
        self.book.resolve(
            alert_fingerprint(DRIFT_ALERT, {"task": published.task}),
            at=datetime.fromtimestamp(now, UTC),
            annotations={"resolved_by": f"champion v{published.version} published"},
        )

    def on_lag(self, lag: dict[tuple[str, str], int], now: float) -> None:
        self.tracker.observe_lag(lag, now)

    # -- evaluation ------------------------------------------------------------------

    def tick(self, now: float) -> list[PerformanceMetric]:
        """Evaluate every window, rule, drift state and piece of advice as of ``now``."""
        at = datetime.fromtimestamp(now, UTC)
        self.tracker.prune(now)
        self.samples = self.tracker.snapshot(now)
        self.rules.evaluate(self.samples, now)
        for task in self.drift.settled(now):
            self.book.resolve(
                alert_fingerprint(DRIFT_ALERT, {"task": task}),
                at=at,
                annotations={"resolved_by": "no further drift"},
            )
        champions = self._champions()
        advice = recommend(self.samples, champions, self.budgets, at)
        self.recommendations = self._keep_since(advice, at)
        snap = self.metrics.snapshot.snapshot
        snap.samples, snap.champions, snap.recommendations = (
            self.samples,
            champions,
            self.recommendations,
        )
        self._export_counters()
        metrics = [
            PerformanceMetric(
                name=s.name,
                value=s.value,
                window=s.window,  # type: ignore[arg-type]
                task=s.task,
                service=s.service,
                labels=s.labels,
                at=at,
            )
            for s in self.samples
            if math.isfinite(s.value)
        ]
        # Standing advice travels on the same topic, so consumers of metrics.performance
        # see it without polling the HTTP API (its evidence is the metrics beside it).
        metrics += [
            PerformanceMetric(
                name="recommendation_active",
                value=1.0,
                window="5m",
                labels={"kind": rec.kind, "target": rec.target[:128]},
                at=at,
            )
            for rec in self.recommendations
        ]
        return metrics

    def _keep_since(self, advice: list[Recommendation], at: datetime) -> list[Recommendation]:
        # A standing recommendation keeps the time it was first made; new ones are logged.
        current: dict[tuple[str, str], datetime] = {}
        out = []
        for rec in advice:
            since = self._advised_since.get(rec.key())
            if since is None:
                since = at
                log.info(
                    "recommendation: %s",
                    rec.summary,
                    extra={"kind": rec.kind, "target": rec.target, "evidence": rec.evidence},
                )
            current[rec.key()] = since
            out.append(rec.model_copy(update={"since": since}))
        self._advised_since = current
        return out

    def _export_counters(self) -> None:
        join = self.tracker.join
        m = self.metrics
        m.join_waiting.set(len(join))
        for reason, total in (
            ("prediction_expired", join.expired_predictions),
            ("label_expired", join.expired_labels),
            ("evicted", join.evicted),
            ("unjudgeable", self.tracker.unjudgeable),
        ):
            # The join keeps running totals; the counter advances by what is new.
            new = total - self._dropped_exported.get(reason, 0)
            if new > 0:
                m.join_dropped.labels(reason=reason).inc(new)
                self._dropped_exported[reason] = total
        m.firing.clear()
        for alert in self.book.firing():
            m.firing.labels(alertname=alert.name, severity=alert.severity.value).inc()
