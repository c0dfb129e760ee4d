"""``flywheel``: the operator CLI. Each command group is one module with ``register``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from flywheel.errors import ConfigError, FlywheelError
from flywheel_cli import alerts, dlq, integrate, models, stack, tasks

__all__ = ["build_parser", "main"]

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# One entry per command group; a new group is a module with `register` and a line here.
GROUPS: tuple[Register, ...] = (
    stack.register,
    tasks.register,
    models.register,
    alerts.register,
    dlq.register,
    integrate.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flywheel", description="Operate a Flywheel deployment.")
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    for register in GROUPS:
        register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"flywheel: configuration: {exc}", file=sys.stderr)
        return 2
    except FlywheelError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
