"""``flywheel models list | show TASK | history TASK | promote TASK VERSION | rollback TASK``.

Everything is read from the compacted ``models.registry`` topic (the source of truth).
``promote`` and ``rollback`` append a :class:`ChampionChange` there, announce the new
champion on ``models.published`` and update the Redis model cache; the trainer adopts
the new champion before its next update. Every verb takes ``--json``.

``list``, ``show`` and ``history`` also read the ``tasks`` topic to mark a deleted
task (``flywheel tasks delete``): its history stays in the registry, predictors no
longer serve it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any, Literal

from flywheel.catalog import TaskCatalog
from flywheel.errors import ModelError
from flywheel.events import ModelVersion
from flywheel.kafka import KafkaConfig, wait_for_kafka
from flywheel.redis import RedisConfig, connect_redis
from flywheel.registry import (
    ModelCache,
    ModelRegistry,
    RegistryView,
    announcement,
    champion_change,
    publish_registry_records,
)
from flywheel_cli.config import StackConfig

__all__ = ["change_champion", "describe_task", "register", "task_history", "task_summaries"]

# The live prequential numbers worth a column, in order of preference.
_HEADLINE = ("accuracy", "auc", "log_loss", "rmse", "mae", "ece")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = subparsers.add_parser("models", help="model versions, champions, promote, rollback")
    verbs = models.add_subparsers(dest="models_command", required=True)

    listing = verbs.add_parser("list", help="every task's champion and live metrics")
    listing.set_defaults(func=_list)
    show = verbs.add_parser("show", help="a task's champion, events_trained, live metrics")
    show.add_argument("task")
    show.set_defaults(func=_show)
    history = verbs.add_parser("history", help="a task's versions and champion changes")
    history.add_argument("task")
    history.set_defaults(func=_history)
    promote = verbs.add_parser("promote", help="make VERSION the task's champion")
    promote.add_argument("task")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason", default="promoted by an operator")
    promote.set_defaults(func=_promote)
    rollback = verbs.add_parser("rollback", help="return to the champion before the current one")
    rollback.add_argument("task")
    rollback.add_argument("--reason", default="rolled back by an operator")
    rollback.set_defaults(func=_rollback)
    for verb in (listing, show, history, promote, rollback):
        verb.add_argument("--json", action="store_true", help="machine-readable output")


# ---- the reports (plain data, so tests and other tools can call them) -----------------


def _version_summary(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "parent_version": version.parent_version,
        "created_at": version.created_at.isoformat(),
        "strategy": version.strategy,
        "trees": version.trees,
        "model_bytes": len(version.model_text),
        "events_trained": version.events_trained,
        "calibration": version.calibration.get("method", "none"),
        "model_sha256": version.model_sha256,
    }


def _live(view: RegistryView, task: str) -> dict[str, float]:
    # The newest version carries the freshest prequential numbers of the champion.
    versions = view.versions(task)
    return dict(versions[-1].metrics) if versions else {}


def task_summaries(
    view: RegistryView, deleted: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    out = []
    for task in view.tasks():
        versions = view.versions(task)
        live = _live(view, task)
        out.append(
            {
                "task": task,
                "deleted": task in deleted,
                "champion": view.champion_version(task),
                "latest_version": versions[-1].version if versions else None,
                "versions_kept": len(versions),
                "events_trained": versions[-1].events_trained if versions else 0,
                "metrics": {k: live[k] for k in _HEADLINE if k in live},
            }
        )
    return out


def describe_task(
    view: RegistryView, task: str, deleted: frozenset[str] = frozenset()
) -> dict[str, Any]:
    versions = view.versions(task)
    if not versions and not view.history(task):
        raise ModelError(f"no models for task {task!r} in models.registry")
    champion = view.champion(task)
    latest = versions[-1] if versions else None
    return {
        "task": task,
        "deleted": task in deleted,
        "events_trained": latest.events_trained if latest else 0,
        "live_metrics": _live(view, task),
        "champion": None if champion is None else _version_summary(champion),
        "latest": None if latest is None else _version_summary(latest),
        "features": [] if latest is None else [f.name for f in latest.feature_schema],
        "category_mappings": {} if latest is None else latest.category_mappings,
    }


def task_history(view: RegistryView, task: str) -> dict[str, Any]:
    if not view.versions(task) and not view.history(task):
        raise ModelError(f"no models for task {task!r} in models.registry")
    return {
        "task": task,
        "versions": [
            {**_version_summary(v), "metrics": dict(v.metrics)} for v in view.versions(task)
        ],
        "champion_changes": [c.model_dump(mode="json") for c in view.history(task)],
    }


async def change_champion(
    kafka: KafkaConfig,
    redis: RedisConfig | None,
    task: str,
    *,
    kind: Literal["promotion", "rollback"],
    version: int | None = None,
    reason: str,
) -> dict[str, Any]:
    """Promote ``version`` (or roll back to the previous champion); return the change."""
    if task in await deleted_tasks(kafka):
        # Predictors ignore champions of a deleted task; the change would only
        # write its model back into Redis.
        raise ModelError(f"task {task!r} was deleted; apply it again (flywheel tasks apply) first")
    registry = ModelRegistry(kafka)
    await registry.start(follow=False)
    try:
        current = registry.champion_version(task)
        if kind == "rollback":
            version = _rollback_target(registry, task)
        assert version is not None
        target = registry.version(task, version)
        if target is None:
            kept = [v.version for v in registry.versions(task)]
            raise ModelError(f"{task}@v{version} is not in models.registry (kept: {kept})")
        if version == current:
            raise ModelError(f"{task}@v{version} is already the champion")
        change = champion_change(
            registry, task, version, kind=kind, reason=reason, metrics=dict(target.metrics)
        )
        await publish_registry_records(kafka, [change], announce=announcement(target, kind))
    finally:
        await registry.stop()
    if redis is not None:
        client = connect_redis(redis)
        try:
            await ModelCache(client, key_prefix=redis.key_prefix).set_champion(target)
        except Exception as exc:  # Redis is a cache; the predictor also reads the registry
            print(f"flywheel: warning: Redis cache not updated: {exc}")
        finally:
            await client.aclose()
    return change.model_dump(mode="json")


def _rollback_target(view: RegistryView, task: str) -> int:
    """The most recent earlier champion that is older than the current one and still kept."""
    current = view.champion_version(task) or 0
    for change in reversed(view.history(task)):
        for number in (change.version, change.previous_version):
            if number is not None and number < current and view.version(task, number):
                return number
    raise ModelError(f"task {task!r} has no earlier champion to roll back to")


# ---- the commands -----------------------------------------------------------------


def _configs() -> tuple[KafkaConfig, RedisConfig]:
    stack = StackConfig.from_env(os.environ, cwd=Path.cwd())
    kafka = KafkaConfig(
        bootstrap_servers=stack.kafka_bootstrap,
        client_id="flywheel-cli",
        topic_prefix=stack.topic_prefix,
    )
    prefix = os.environ.get("FLYWHEEL_REDIS_KEY_PREFIX", "").strip() or "flywheel:"
    return kafka, RedisConfig(url=stack.redis_url, key_prefix=prefix)


async def _view(kafka: KafkaConfig) -> ModelRegistry:
    await wait_for_kafka(kafka, timeout_s=15)
    registry = ModelRegistry(kafka)
    await registry.start(follow=False)
    await registry.stop()
    return registry


async def deleted_tasks(kafka: KafkaConfig) -> frozenset[str]:
    """Tasks whose latest ``tasks`` record is a tombstone (deleted, not re-applied)."""
    catalog = TaskCatalog(kafka)
    try:
        await catalog.start(follow=False)
    finally:
        await catalog.stop()
    return catalog.deleted()


async def _view_and_deleted(kafka: KafkaConfig) -> tuple[ModelRegistry, frozenset[str]]:
    return await _view(kafka), await deleted_tasks(kafka)


def _emit(args: argparse.Namespace, payload: Any, text: str) -> int:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)
    return 0


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={metrics[k]:.4g}" for k in _HEADLINE if k in metrics) or "-"


def _list(args: argparse.Namespace) -> int:
    rows = task_summaries(*asyncio.run(_view_and_deleted(_configs()[0])))
    lines = [f"{'TASK':<40} {'CHAMPION':>8} {'LATEST':>6} {'EVENTS':>10}  LIVE METRICS"]
    for r in rows:
        name = f"{r['task']} (deleted)" if r["deleted"] else r["task"]
        lines.append(
            f"{name:<40} {r['champion'] or '-':>8} {r['latest_version'] or '-':>6} "
            f"{r['events_trained']:>10}  {_metrics_text(r['metrics'])}"
        )
    return _emit(args, rows, "\n".join(lines) if rows else "no models yet")


def _show(args: argparse.Namespace) -> int:
    view, deleted = asyncio.run(_view_and_deleted(_configs()[0]))
    info = describe_task(view, args.task, deleted)
    champion = info["champion"] or {}
    lines = [
        f"task:            {info['task']}",
        f"champion:        v{champion.get('version', '-')} ({champion.get('strategy', '-')}, "
        f"{champion.get('trees', '-')} trees, calibration {champion.get('calibration', '-')})",
        f"latest version:  v{(info['latest'] or {}).get('version', '-')}",
        f"events_trained:  {info['events_trained']}",
        f"live metrics:    {_metrics_text(info['live_metrics'])}",
        f"features:        {', '.join(info['features'])}",
    ]
    if info["deleted"]:
        lines.insert(1, "status:          deleted (not served; the registry keeps its history)")
    text = "\n".join(lines)
    return _emit(args, info, text)


def _history(args: argparse.Namespace) -> int:
    info = task_history(asyncio.run(_view(_configs()[0])), args.task)
    lines = ["VERSION  CREATED                           STRATEGY  TREES  EVENTS_TRAINED  METRICS"]
    for v in info["versions"]:
        lines.append(
            f"v{v['version']:<7} {v['created_at']:<33} {v['strategy']:<9} {v['trees']:>5} "
            f"{v['events_trained']:>15}  {_metrics_text(v['metrics'])}"
        )
    lines.append("")
    lines.append("SEQ   KIND       VERSION  PREVIOUS  REASON")
    for c in info["champion_changes"]:
        lines.append(
            f"{c['sequence']:<5} {c['kind']:<10} v{c['version']:<7} "
            f"{'v' + str(c['previous_version']) if c['previous_version'] else '-':<9} {c['reason']}"
        )
    return _emit(args, info, "\n".join(lines))


def _change(args: argparse.Namespace, kind: Literal["promotion", "rollback"]) -> int:
    kafka, redis = _configs()
    change = asyncio.run(
        change_champion(
            kafka,
            redis,
            args.task,
            kind=kind,
            version=getattr(args, "version", None),
            reason=args.reason,
        )
    )
    text = (
        f"{args.task}: v{change['version']} is the champion "
        f"({kind}; previous v{change['previous_version']})"
    )
    return _emit(args, change, text)


def _promote(args: argparse.Namespace) -> int:
    return _change(args, "promotion")


def _rollback(args: argparse.Namespace) -> int:
    return _change(args, "rollback")
