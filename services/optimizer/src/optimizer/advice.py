"""Recommendations: what an operator should change, each with the numbers behind it.

Every recommendation is derived from the same :class:`~optimizer.tracker.MetricSample`
values that reach Prometheus, plus the champion model's size from the registry, so
its evidence can be checked on a dashboard. Thin evidence (fewer than
``min_samples`` observations) never produces advice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from optimizer.tracker import MetricSample

__all__ = ["AdviceBudgets", "ChampionFacts", "Recommendation", "recommend"]

Kind = Literal[
    "model_over_tree_budget",
    "model_over_latency_budget",
    "cache_not_paying",
    "use_batch_endpoint",
    "accuracy_below_baseline",
    "memory_over_budget",
    "ingest_lag_high",
]


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Kind
    target: str = Field(description="the task, service or consumer group it is about")
    summary: str
    action: str
    evidence: dict[str, float | int | str]
    since: datetime

    def key(self) -> tuple[str, str]:
        return (self.kind, self.target)


@dataclass(frozen=True, slots=True)
class AdviceBudgets:
    latency_p99_ms: float = 50.0
    min_cache_hit_rate: float = 0.05
    batch_min_throughput_per_s: float = 50.0
    rss_bytes: float = 2 * 1024**3
    ingest_lag: float = 10_000
    min_samples: int = 100


@dataclass(frozen=True, slots=True)
class ChampionFacts:
    task: str
    version: int
    trees: int
    max_trees: int
    model_bytes: int


_Index = dict[tuple[str, str, str], MetricSample]


def _index(samples: list[MetricSample]) -> _Index:
    """Task-level samples by (name, window, task); per-version samples are left out."""
    return {
        (s.name, s.window, s.task): s
        for s in samples
        if s.task is not None and "version" not in s.labels
    }


class _Advisor:
    def __init__(self, budgets: AdviceBudgets, now: datetime) -> None:
        self.budgets = budgets
        self.now = now
        self.out: list[Recommendation] = []

    def add(
        self, kind: Kind, target: str, summary: str, action: str, **evidence: float | str
    ) -> None:
        self.out.append(
            Recommendation(
                kind=kind,
                target=target,
                summary=summary,
                action=action,
                evidence=evidence,
                since=self.now,
            )
        )

    def champion(self, champion: ChampionFacts) -> None:
        if champion.trees > champion.max_trees:
            self.add(
                "model_over_tree_budget",
                champion.task,
                f"v{champion.version} has {champion.trees} trees; the budget is "
                f"{champion.max_trees}",
                "use the window or refit strategy (training.strategy) or lower trees_per_update",
                version=champion.version,
                trees=champion.trees,
                max_trees=champion.max_trees,
                model_bytes=champion.model_bytes,
            )

    def latency(self, task: str, sample: MetricSample) -> None:
        budget = self.budgets.latency_p99_ms
        if sample.value > budget:
            self.add(
                "model_over_latency_budget",
                task,
                f"p99 latency {sample.value:.1f} ms over 5m exceeds the {budget:g} ms budget",
                "shrink the model (max_trees, num_leaves) or scale out the predictor",
                latency_p99_ms=round(sample.value, 3),
                budget_ms=budget,
                predictions=sample.samples,
            )

    def cache(self, task: str, sample: MetricSample, by_key: _Index) -> None:
        if sample.value >= self.budgets.min_cache_hit_rate:
            return
        cached = by_key.get(("cached_latency_p50_ms", sample.window, task))
        uncached = by_key.get(("uncached_latency_p50_ms", sample.window, task))
        evidence: dict[str, float | str] = {"hit_rate": round(sample.value, 4)}
        if cached and uncached:
            # What the cache saves per request on average, against what every miss pays.
            evidence["saved_ms_per_request"] = round(
                sample.value * (uncached.value - cached.value), 4
            )
        self.add(
            "cache_not_paying",
            task,
            f"prediction cache hit rate {sample.value:.1%} is below "
            f"{self.budgets.min_cache_hit_rate:.0%}: every miss pays a Redis round trip",
            "disable the prediction cache for this task or key it on fewer features",
            **evidence,
            predictions=sample.samples,
        )

    def batch(self, task: str, sample: MetricSample) -> None:
        if sample.value >= self.budgets.batch_min_throughput_per_s:
            self.add(
                "use_batch_endpoint",
                task,
                f"{sample.value:.0f} predictions/s over 5m: per-request overhead dominates "
                "if they arrive one row per request",
                'send rows together: POST /v1/tasks/{task}/predict with {"rows": [...]}',
                throughput_per_s=round(sample.value, 2),
                threshold_per_s=self.budgets.batch_min_throughput_per_s,
            )

    def baseline(self, task: str, sample: MetricSample, by_key: _Index) -> None:
        baseline = by_key.get(("baseline_error_rate", sample.window, task))
        if baseline is None or baseline.samples < self.budgets.min_samples:
            return
        if sample.value > baseline.value:
            self.add(
                "accuracy_below_baseline",
                task,
                f"the model's error {sample.value:.3g} over 5m is worse than "
                f"repeating the previous label ({baseline.value:.3g})",
                "check the features and labels for leakage or lag; roll back "
                "with `flywheel models rollback` if a recent version regressed",
                model_error=round(sample.value, 4),
                baseline_error=round(baseline.value, 4),
                labeled=sample.samples,
            )

    def service(self, sample: MetricSample) -> None:
        if sample.name == "rss_bytes" and sample.value > self.budgets.rss_bytes:
            self.add(
                "memory_over_budget",
                f"{sample.service}/{sample.labels.get('instance', '')}",
                f"RSS {sample.value / 2**20:.0f} MiB exceeds "
                f"{self.budgets.rss_bytes / 2**20:.0f} MiB",
                "lower cache sizes or replay windows, or give the service more memory",
                rss_bytes=sample.value,
                budget_bytes=self.budgets.rss_bytes,
            )
        if sample.name == "consumer_lag" and sample.value > self.budgets.ingest_lag:
            self.add(
                "ingest_lag_high",
                f"{sample.labels.get('group')}/{sample.labels.get('topic')}",
                f"{sample.value:.0f} records behind on {sample.labels.get('topic')}",
                "add consumers to the group (more partitions and replicas)",
                lag=sample.value,
                threshold=self.budgets.ingest_lag,
            )


def recommend(
    samples: list[MetricSample],
    champions: list[ChampionFacts],
    budgets: AdviceBudgets,
    now: datetime,
) -> list[Recommendation]:
    """Every recommendation that the 5-minute windows and the champions support."""
    advisor = _Advisor(budgets, now)
    for champion in champions:
        advisor.champion(champion)
    by_key = _index(samples)
    for (name, window, task), sample in sorted(by_key.items()):
        if window != "5m" or sample.samples < budgets.min_samples:
            continue
        if name == "latency_p99_ms":
            advisor.latency(task, sample)
        elif name == "cache_hit_rate":
            advisor.cache(task, sample, by_key)
        elif name == "throughput_per_s":
            advisor.batch(task, sample)
        elif name == "model_error_rate":
            advisor.baseline(task, sample, by_key)
    for sample in samples:
        if sample.window == "5m":
            advisor.service(sample)
    return advisor.out
