"""``flywheel stack up | down | status | restart | env | jars``: the no-Docker local stack."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flywheel_cli.health import ComponentStatus
    from flywheel_cli.local_stack import LocalStack

__all__ = ["register"]


def _stack(*, quiet: bool = False) -> LocalStack:
    from flywheel_cli.config import StackConfig
    from flywheel_cli.local_stack import LocalStack

    config = StackConfig.from_env(os.environ, cwd=Path.cwd())
    started = time.monotonic()

    def echo(line: str) -> None:
        if not quiet:
            print(f"[{time.monotonic() - started:5.1f}s] {line}", file=sys.stderr, flush=True)

    return LocalStack(config, env=os.environ, python=sys.executable, echo=echo)


def _print_table(statuses: list[ComponentStatus]) -> None:
    rows = [("COMPONENT", "PID", "PORT", "HEALTH", "MANAGED", "DETAIL")]
    for status in statuses:
        data = status.to_json()
        rows.append((
            data["name"],
            str(data["pid"] or "-"),
            str(data["port"] or "-"),
            data["health"],
            "yes" if data["managed"] else "no",
            data["detail"],
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, row[5]]))


def _status(args: argparse.Namespace) -> int:
    stack = _stack()
    statuses = stack.status()
    healthy = all(status.health.healthy for status in statuses)
    if args.json:
        report = {
            "healthy": healthy,
            "state_dir": str(stack.config.state_dir),
            "components": [status.to_json() for status in statuses],
        }
        print(json.dumps(report, indent=2))
    else:
        _print_table(statuses)
    return 0 if healthy else 1


def _replicas(args: argparse.Namespace) -> dict[str, int]:
    """Replicas per service from ``--replicas N`` (every scalable service) and ``--scale``."""
    from flywheel.errors import ConfigError
    from flywheel_cli.components import SERVICES, parse_scale

    replicas: dict[str, int] = {}
    if args.replicas is not None:
        replicas = {spec.name: args.replicas for spec in SERVICES if spec.scalable}
    try:
        replicas |= parse_scale(args.scale or "")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return replicas


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    stack = _stack()
    stack.config = stack.config.with_replicas(_replicas(args))
    stack.up(timeout_s=args.timeout)
    print(f"stack healthy in {time.monotonic() - started:.1f}s", file=sys.stderr)
    _print_table(stack.status())
    return 0


def _down(args: argparse.Namespace) -> int:
    stack = _stack()
    results = stack.down()
    if not results:
        print("nothing to stop", file=sys.stderr)
    for record, stopped in results:
        if stopped is None:
            print(f"{record.name}: left running (not started by this stack)")
        else:
            print(f"{record.name}: pid {stopped.pid} {stopped.outcome} ({stopped.seconds:.1f}s)")
    return 0


def _restart(args: argparse.Namespace) -> int:
    stack = _stack()
    stopped, started = stack.restart(
        args.name, kill=args.kill, pause_s=args.pause, timeout_s=args.timeout
    )
    print(
        f"{args.name}: pid {stopped.pid} {stopped.outcome}, now pid {started.pid} (healthy)",
        file=sys.stderr,
    )
    return 0


def _env(args: argparse.Namespace) -> int:
    import shlex

    config = _stack(quiet=True).config
    for name, value in (
        ("KAFKA_BOOTSTRAP_SERVERS", config.kafka_bootstrap),
        ("REDIS_URL", config.redis_url),
        ("FLYWHEEL_STATE_DIR", str(config.state_dir)),
    ):
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _jars(args: argparse.Namespace) -> int:
    from flywheel_cli.kafka_local import ensure_jars

    config = _stack().config
    fetched = ensure_jars(config.kafka_lib_dir, config.pom_path, force=args.force)
    state = "fetched into" if fetched else "already in"
    print(f"Kafka jars {state} {config.kafka_lib_dir}")
    return 0


def _replica_count(raw: str) -> int:
    from flywheel_cli.components import MAX_REPLICAS

    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if not 1 <= value <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..{MAX_REPLICAS}")
    return value


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "stack",
        help="run Kafka, Redis and the services as local processes",
        description=(
            "The no-Docker local stack. State, pids and logs live in FLYWHEEL_STATE_DIR "
            "(default <repo>/.flywheel); KAFKA_BOOTSTRAP_SERVERS / REDIS_URL point it at "
            "an existing cluster instead."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start what is missing and wait until healthy")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    up.add_argument(
        "--replicas",
        type=_replica_count,
        metavar="N",
        help="run N processes each of stream-ingest, trainer and predictor (default 1)",
    )
    up.add_argument(
        "--scale",
        metavar="SERVICE=N,...",
        help="replicas per service, e.g. trainer=2,predictor=3 (wins over --replicas)",
    )
    up.set_defaults(func=_up)

    down = commands.add_parser("down", help="stop the processes `up` started (by pid)")
    down.set_defaults(func=_down)

    status = commands.add_parser("status", help="each component's pid, port and health")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)

    restart = commands.add_parser(
        "restart",
        help="stop one service process (e.g. predictor-2) and start it again",
        description="Stop one service process this stack started, by its recorded pid, "
        "start it again with the same port and environment, and wait until it is healthy.",
    )
    restart.add_argument("name", help="the component name `status` shows, e.g. trainer-2")
    restart.add_argument(
        "--kill", action="store_true", help="SIGKILL instead of SIGTERM (simulate a crash)"
    )
    restart.add_argument(
        "--pause", type=float, default=0.0, metavar="S", help="stay down S seconds first"
    )
    restart.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    restart.set_defaults(func=_restart)

    env = commands.add_parser(
        "env", help='print the endpoints as shell exports: eval "$(flywheel stack env)"'
    )
    env.set_defaults(func=_env)

    jars = commands.add_parser("jars", help="fetch the Kafka jars from Maven Central if missing")
    jars.add_argument("--force", action="store_true", help="fetch even if the cache is current")
    jars.set_defaults(func=_jars)
