"""Prometheus metrics of one trainer process (its own registry, so tests can run many)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["TrainerMetrics"]

# The live prequential numbers exported per task (and champion version).
EXPORTED_METRICS = (
    "accuracy",
    "auc",
    "log_loss",
    "rmse",
    "mae",
    "ece",
    "baseline_accuracy",
    "baseline_rmse",
)


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.up = Gauge("flywheel_trainer_up", "1 while the trainer consumes.", registry=r)
        self.events_trained = Gauge(
            "flywheel_trainer_events_trained",
            "Events learned per task (exactly once, from models.registry).",
            ["task"],
            registry=r,
        )
        self.batches = Counter(
            "flywheel_trainer_batches", "Training batches learned.", ["task"], registry=r
        )
        self.prequential = Gauge(
            "flywheel_trainer_prequential",
            "Live prequential metric of the champion over the recent window.",
            ["task", "version", "metric"],
            registry=r,
        )
        self.member_batch = Gauge(
            "flywheel_trainer_member_batch",
            "Ensemble tasks: each member champion's prequential metric on the latest batch.",
            ["task", "member", "metric"],
            registry=r,
        )
        self.update_seconds = Histogram(
            "flywheel_trainer_update_seconds",
            "Score-then-learn time per update, by strategy.",
            ["strategy"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.model_trees = Gauge(
            "flywheel_trainer_model_trees", "Trees of the latest version.", ["task"], registry=r
        )
        self.model_bytes = Gauge(
            "flywheel_trainer_model_bytes",
            "LightGBM text size of the latest version.",
            ["task"],
            registry=r,
        )
        self.champion_version = Gauge(
            "flywheel_trainer_champion_version", "Champion version per task.", ["task"], registry=r
        )
        self.promotions = Counter(
            "flywheel_trainer_champion_changes",
            "Promotions and rollbacks written to models.registry.",
            ["task", "kind"],
            registry=r,
        )
        self.dead_letters = Counter(
            "flywheel_trainer_dead_letters",
            "Training batches refused (to feedback.dlq), by reason.",
            ["reason"],
            registry=r,
        )
        self.transactions_aborted = Counter(
            "flywheel_trainer_transactions_aborted",
            "Update transactions that failed and were retried from the committed offset.",
            registry=r,
        )
        self.cache_repairs = Counter(
            "flywheel_trainer_cache_repairs",
            "Champions whose Redis keys were missing and were rewritten from the registry.",
            ["task"],
            registry=r,
        )
        self._exported: dict[str, str] = {}

    def members(self, task: str, members: dict[str, dict[str, float]]) -> None:
        """Export each ensemble member's numbers on the latest batch."""
        for member, metrics in members.items():
            for name in EXPORTED_METRICS:
                if name in metrics:
                    self.member_batch.labels(task, member, name).set(metrics[name])

    def live(self, task: str, version: int | None, metrics: dict[str, float]) -> None:
        """Export the live prequential numbers of ``task``'s champion ``version``."""
        label = "none" if version is None else str(version)
        previous = self._exported.get(task)
        if previous is not None and previous != label:
            for name in EXPORTED_METRICS:
                with contextlib.suppress(KeyError):
                    self.prequential.remove(task, previous, name)
        self._exported[task] = label
        for name in EXPORTED_METRICS:
            if name in metrics:
                self.prequential.labels(task, label, name).set(metrics[name])
