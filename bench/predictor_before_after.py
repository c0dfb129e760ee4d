"""The predictor at an earlier revision and as checked out, side by side, one run.

    .venv/bin/python bench/predictor_before_after.py --before <git rev> \
        [--rates 500] [--reps 5] [--duration 3]

For judging a hot-path change on a shared machine: both predictors (the earlier one
is the ``services/predictor`` package of ``--before``, extracted with ``git archive``;
everything else is the checkout's; ``--after <rev>`` takes the other side from a
revision too instead of the working tree), and the HTTP floor, serve the benchmark's model
(bench/predictor_vs_mlserver.py: same model, same bodies, same open-loop load
generator). Every repetition drives floor, before and after in turn at each rate, so
all three see the same neighbours; the load average is recorded with every run.
Medians are printed and written to bench/results/predictor_before_after.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make ``bench`` importable from the repo root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.predictor_vs_mlserver import (
    ROOT,
    TASK,
    cleanup,
    flywheel_body,
    load,
    start_floor,
    start_flywheel,
    stop,
    train,
)

RESULTS = ROOT / "bench" / "results" / "predictor_before_after.json"
PACKAGE = "services/predictor/src"


def extract(rev: str, into: Path) -> Path:
    """``services/predictor/src`` as of ``rev``, for PYTHONPATH to put first."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, PACKAGE],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / PACKAGE


def _short(rev: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def _start_at(version: Any, workdir: Path, source: Path | None) -> tuple[Any, int, Any]:
    """start_flywheel, with ``source`` (a predictor package) first on PYTHONPATH."""
    if source is None:
        return start_flywheel(version, workdir)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(source)
    try:
        return start_flywheel(version, workdir)
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument(
        "--after", help="git revision to measure instead of the working tree (default: it)"
    )
    parser.add_argument("--rates", default="500", help="comma-separated req/s (single row)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    before_rev = _short(args.before)
    after_rev = _short(args.after) if args.after else f"{_short('HEAD')} + working tree"
    version, rows = train()
    bodies = [flywheel_body(rows[i : i + 1]) for i in range(500)]
    path = f"/v1/tasks/{TASK}/predict"
    processes: list[subprocess.Popen[bytes]] = []
    namespaces: list[Any] = []
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        work = Path(tmp)
        try:
            started = {}
            for name, rev in (("after", args.after), ("before", args.before)):
                (work / name).mkdir()
                source = None if rev is None else extract(rev, work / f"{name}-src")
                process, port, namespace = _start_at(version, work / name, source)
                processes.append(process)
                namespaces.append(namespace)
                started[name] = (process, port)
            (before, before_port), (after, after_port) = started["before"], started["after"]
            floor, floor_port = start_floor()
            processes.append(floor)
            servers = {
                "floor": (floor, floor_port, "/"),
                "before": (before, before_port, path),
                "after": (after, after_port, path),
            }
            for process, port, target in servers.values():  # warm: connections, caches
                load(port, target, bodies, 200, 1.0, pid=process.pid)
            for _ in range(args.reps):
                for rate in rates:
                    for name, (process, port, target) in servers.items():
                        point = load(port, target, bodies, rate, args.duration, pid=process.pid)
                        point["load_average_1m"] = round(os.getloadavg()[0], 2)
                        runs.setdefault(name, {}).setdefault(str(rate), []).append(point)
        finally:
            for process in processes:
                stop(process)
            for namespace in namespaces:
                asyncio.run(cleanup(*namespace))
    summary = {
        name: {
            rate: {
                key: statistics.median(p[key] for p in points)
                for key in ("p50_ms", "p99_ms", "cpu_ms_per_request", "load_average_1m")
            }
            | {"errors": sum(p["errors"] for p in points), "runs": points}
            for rate, points in by_rate.items()
        }
        for name, by_rate in runs.items()
    }
    report = {
        "benchmark": "predictor_before_after",
        "before": before_rev,
        "after": after_rev,
        "reps": args.reps,
        "duration_s": args.duration,
        "results": summary,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"before {before_rev}, after {after_rev}; medians of {args.reps} runs")
    print("latency p50 / p99 ms (server CPU ms per request) [median 1-min load average]")
    for name, by_rate in summary.items():
        for rate, m in by_rate.items():
            print(
                f"{name:>6} @ {float(rate):>5.0f} req/s: {m['p50_ms']:.2f} / {m['p99_ms']:.2f} "
                f"({m['cpu_ms_per_request']:.3f}) [{m['load_average_1m']:.1f}] "
                f"errors {m['errors']}"
            )
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
