"""How long `flywheel stack up` takes to a healthy stack, with a warm jar cache.

Runs a private stack (own state folder under /tmp, free ports) so it never touches a
stack already running on this machine, and measures, over N runs each:

* ``up_after_down_s``: `flywheel stack down` then `flywheel stack up`, timed from
  launching `up` to its exit (it exits once Kafka answers metadata, Redis answers
  PING, every topic exists and every service is healthy) — the operator's restart;
* ``up_fresh_state_s``: `up` on an empty state folder (storage format + creating
  every topic on top of the above);
* ``up_after_down_cpu_s``: CPU seconds the stack's processes used to get there,
  which shows the cost when other work on the machine inflates the wall times;
* references measured in the same run: the bare broker (`java kafka.Kafka`, same
  jars and config) from exec to its port accepting connections, and a bare
  `redis-server` to its port accepting connections.

Prints one JSON document; ``--output FILE`` also writes it. Target: under 30 s.

    .venv/bin/python bench/stack_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flywheel_cli import kafka_local, redis_local
from flywheel_cli.components import SERVICES
from flywheel_cli.config import StackConfig
from flywheel_cli.processes import port_open, process_start_ticks, spawn, terminate

TARGET_S = 30.0
REPO = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def private_env(state_dir: Path) -> dict[str, str]:
    """The caller's environment minus anything pointing at another stack, on free ports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FLYWHEEL_") and key not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")
    }
    kafka, controller, redis, *service_ports = free_ports(3 + len(SERVICES))
    env |= {
        "FLYWHEEL_STATE_DIR": str(state_dir),
        "FLYWHEEL_KAFKA_PORT": str(kafka),
        "FLYWHEEL_KAFKA_CONTROLLER_PORT": str(controller),
        "FLYWHEEL_REDIS_PORT": str(redis),
    }
    env |= {spec.port_env: str(port) for spec, port in zip(SERVICES, service_ports, strict=True)}
    return env


def flywheel(*args: str, env: dict[str, str]) -> float:
    """Run the CLI; return its wall time. Any failure aborts the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flywheel_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"flywheel {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def stack_cpu_seconds(state_dir: Path) -> float:
    """CPU time the stack's processes have used so far (user + system).

    Unlike wall time this barely depends on what else the machine is doing, so it
    says what a start costs even when the wall-clock numbers are inflated by load.
    """
    state = json.loads((state_dir / "stack.json").read_text())
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for component in state["components"]:
        if component["managed"] and component["pid"]:
            stat = Path(f"/proc/{component['pid']}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def summary(samples: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(samples), 3),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
        "samples": [round(sample, 3) for sample in samples],
    }


def time_to_port(argv: list[str], port: int, *, log: Path, env: dict[str, str], cwd: Path) -> float:
    """Exec ``argv`` and time until ``port`` accepts TCP connections; then stop it."""
    started = time.perf_counter()
    proc = spawn(argv, log_path=log, env=env, cwd=cwd)
    try:
        while not port_open("127.0.0.1", port, timeout_s=0.05):
            if proc.poll() is not None:
                raise SystemExit(f"{argv[0]} exited early; see {log}")
            if time.perf_counter() - started > 120:
                raise SystemExit(f"{argv[0]} did not open port {port} in 120 s; see {log}")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        terminate(proc.pid, process_start_ticks(proc.pid), timeout_s=60)
        proc.wait()


def reference_runs(root: Path, runs: int) -> dict[str, object]:
    env = private_env(root / "reference")
    config = StackConfig.from_env(env, cwd=REPO)
    kafka_local.write_broker_config(config)
    kafka_local.ensure_storage_formatted(config)
    config.redis_dir.mkdir(parents=True, exist_ok=True)
    kafka = [
        time_to_port(
            kafka_local.broker_argv(config),
            config.kafka_port,
            log=config.logs_dir / "kafka.stdout.log",
            env=env,
            cwd=config.kafka_dir,
        )
        for _ in range(runs)
    ]
    redis = [
        time_to_port(
            redis_local.redis_argv(config),
            config.redis_port,
            log=config.logs_dir / "redis.log",
            env=env,
            cwd=config.redis_dir,
        )
        for _ in range(runs)
    ]
    return {"kafka_raw_to_port_open_s": summary(kafka), "redis_raw_to_port_open_s": summary(redis)}


def measure(runs: int, fresh_runs: int, root: Path) -> dict[str, object]:
    fresh: list[float] = []
    for index in range(fresh_runs):
        env = private_env(root / f"fresh-{index}")
        fresh.append(flywheel("stack", "up", env=env))
        flywheel("stack", "down", env=env)

    env = private_env(root / "restart")
    flywheel("stack", "up", env=env)  # format and topics once; not measured
    status = subprocess.run(
        [sys.executable, "-m", "flywheel_cli", "stack", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    components = [c["name"] for c in json.loads(status.stdout)["components"]]
    restart: list[float] = []
    cpu: list[float] = []
    down: list[float] = []
    for _ in range(runs):
        down.append(flywheel("stack", "down", env=env))
        restart.append(flywheel("stack", "up", env=env))
        cpu.append(stack_cpu_seconds(root / "restart"))
    flywheel("stack", "down", env=env)

    return {
        "components": components,
        "up_after_down_s": summary(restart),
        "up_after_down_cpu_s": summary(cpu),
        "up_fresh_state_s": summary(fresh),
        "down_s": summary(down),
        "restart_meets_target": statistics.median(restart) < TARGET_S,
        "fresh_state_meets_target": statistics.median(fresh) < TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fresh-runs", type=int, default=3)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    config = StackConfig.from_env({}, cwd=REPO)
    kafka_local.ensure_jars(config.kafka_lib_dir, config.pom_path)  # warm cache: not timed

    load_at_start = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    try:
        stack = measure(args.runs, args.fresh_runs, root)
        reference = reference_runs(root, args.runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    result = {
        "benchmark": "stack_startup",
        "runs": args.runs,
        "fresh_runs": args.fresh_runs,
        **stack,
        "reference": reference,
        "target_s": TARGET_S,
        # Other work on the machine slows every number here; the load shows how much.
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": round(load_at_start, 2),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
