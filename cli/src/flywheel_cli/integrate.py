"""``flywheel integrate SERVICE --task TASK --schema FILE``: a typed client for a task.

Writes into ``--out`` (default ``./<service>_flywheel``) the client module, its test
and an integration guide, all generated from the same task YAML that ``flywheel tasks
apply`` registers (see :mod:`flywheel_cli.codegen`). Existing files are never
overwritten without ``--force``, and nothing is written unless every file can be.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flywheel.errors import TaskError
from flywheel.tasks import TaskDefinition, load_task_file
from flywheel_cli.codegen import IntegrationError, render_integration, validate_service_name

__all__ = ["choose_task", "register", "write_integration"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    integrate = subparsers.add_parser(
        "integrate",
        help="generate a typed client module, its test and a guide for a service's task",
        description="Generate a typed client (pydantic features, predict, feedback), its "
        "pytest test and an integration guide from a task YAML file.",
    )
    integrate.add_argument("service", help="the client service (a Python identifier)")
    integrate.add_argument(
        "--schema", type=Path, required=True, help="task YAML (the file `tasks apply` takes)"
    )
    integrate.add_argument(
        "--task", help="the task's name (required when the file holds several tasks)"
    )
    integrate.add_argument(
        "--out", type=Path, help="output directory (default: ./<service>_flywheel)"
    )
    integrate.add_argument("--force", action="store_true", help="overwrite generated files")
    integrate.set_defaults(func=_integrate)


def choose_task(tasks: list[TaskDefinition], name: str | None, schema: Path) -> TaskDefinition:
    """The task named ``name`` in the file, or its only task when no name is given."""
    if name is None:
        if len(tasks) == 1:
            return tasks[0]
        names = ", ".join(t.name for t in tasks)
        raise IntegrationError(f"{schema} holds {len(tasks)} tasks ({names}); pick one with --task")
    for task in tasks:
        if task.name == name:
            return task
    names = ", ".join(t.name for t in tasks)
    raise IntegrationError(f"--task {name!r}: not in {schema} (it defines: {names})")


def write_integration(
    service: str,
    schema: Path,
    task_name: str | None,
    out: Path | None = None,
    *,
    force: bool = False,
) -> list[Path]:
    """Generate and write the files; returns their paths."""
    validate_service_name(service)
    try:
        tasks = load_task_file(schema)
    except OSError as exc:
        raise IntegrationError(f"--schema {schema}: {exc.strerror or exc}") from exc
    except TaskError as exc:
        raise IntegrationError(f"--schema {exc}") from exc
    task = choose_task(tasks, task_name, schema)
    files = render_integration(task, service, schema_path=schema.as_posix())
    directory = out if out is not None else Path(f"{service}_flywheel")
    targets = [directory / f.path for f in files]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise IntegrationError(
            f"refusing to overwrite {', '.join(existing)} (use --force to regenerate)"
        )
    if directory.exists() and not directory.is_dir():
        raise IntegrationError(f"--out {directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    for target, generated in zip(targets, files, strict=True):
        target.write_text(generated.text, encoding="utf-8")
    return targets


def _integrate(args: argparse.Namespace) -> int:
    try:
        written = write_integration(
            args.service, args.schema, args.task, args.out, force=args.force
        )
    except IntegrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    guide = next(p for p in written if p.suffix == ".md")
    print(f"next: flywheel tasks apply {args.schema.as_posix()}; then read {guide}")
    return 0
