"""``flywheel tasks apply FILE | list | show NAME | delete NAME``: the task catalog.

Tasks live in the compacted ``tasks`` topic; stream-ingest sends events of a task
that was never applied to the DLQ, so ``apply`` is the first step of integrating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from flywheel.catalog import TaskCatalog, apply_tasks, delete_task
from flywheel.errors import FlywheelError
from flywheel.kafka import KafkaConfig, ensure_topics, wait_for_kafka
from flywheel.tasks import TaskDefinition, load_task_file
from flywheel.topics import TASKS
from flywheel_cli.config import StackConfig

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tasks = subparsers.add_parser("tasks", help="apply, list, show or delete task definitions")
    verbs = tasks.add_subparsers(dest="tasks_command", required=True)

    apply = verbs.add_parser("apply", help="validate a YAML file and store its task(s)")
    apply.add_argument("file", type=Path)
    apply.add_argument("--dry-run", action="store_true", help="validate only")
    apply.set_defaults(func=_apply)

    listing = verbs.add_parser("list", help="every applied task")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)

    show = verbs.add_parser("show", help="one task's definition")
    show.add_argument("name")
    show.set_defaults(func=_show)

    delete = verbs.add_parser("delete", help="remove a task (its events then go to the DLQ)")
    delete.add_argument("name")
    delete.set_defaults(func=_delete)


def _kafka() -> KafkaConfig:
    stack = StackConfig.from_env(os.environ, cwd=Path.cwd())
    return KafkaConfig(
        bootstrap_servers=stack.kafka_bootstrap,
        client_id="flywheel-cli",
        topic_prefix=stack.topic_prefix,
    )


async def _catalog(config: KafkaConfig) -> TaskCatalog:
    await wait_for_kafka(config, timeout_s=15)
    catalog = TaskCatalog(config)
    await catalog.start(follow=False)
    await catalog.stop()
    return catalog


def _apply(args: argparse.Namespace) -> int:
    try:
        tasks = load_task_file(args.file)
    except (FlywheelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        for task in tasks:
            print(f"valid: {task.name} ({task.objective.value}, {len(task.features)} features)")
        return 0

    async def run() -> None:
        config = _kafka()
        await wait_for_kafka(config, timeout_s=15)
        await ensure_topics(config, [TASKS])
        await apply_tasks(config, tasks)

    asyncio.run(run())
    for task in tasks:
        print(f"applied: {task.name} ({task.objective.value}, {len(task.features)} features)")
    return 0


def _list(args: argparse.Namespace) -> int:
    catalog = asyncio.run(_catalog(_kafka()))
    tasks = catalog.all()
    if args.json:
        print(json.dumps([t.model_dump(mode="json") for t in tasks], indent=2))
        return 0
    for task in tasks:
        flush = task.flush
        print(
            f"{task.name:<48} {task.objective.value:<11} {len(task.features):>3} features  "
            f"flush {flush.max_events} events / {flush.max_age_s:g}s"
        )
    if not tasks:
        print("no tasks applied yet: flywheel tasks apply FILE")
    return 0


def _show(args: argparse.Namespace) -> int:
    task: TaskDefinition | None = asyncio.run(_catalog(_kafka())).get(args.name)
    if task is None:
        print(f"error: no task named {args.name!r}", file=sys.stderr)
        return 1
    print(json.dumps(task.model_dump(mode="json"), indent=2))
    return 0


def _delete(args: argparse.Namespace) -> int:
    asyncio.run(delete_task(_kafka(), args.name))
    print(f"deleted: {args.name}")
    return 0
