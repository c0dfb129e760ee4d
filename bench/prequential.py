"""Prequential ("test-then-train") learning-quality benchmark (issue 3, benchmark 3).

Feeds River's Phishing and Bananas datasets and SEA / Agrawal drift streams (inside
``ConceptDriftStream``) to Flywheel's trainer learner in micro-batches, the way
stream-ingest flushes them, and to River's ARF, an append-only ``init_model`` LightGBM and
no-change / majority baselines, all in the same run on the same rows. Accuracy is the mean
over every sample after a warm-up (the first batch, during which no batch learner has a
model yet), identical for every learner; wall time is the learner's own time only.

Target (issue 3): Flywheel's accuracy >= River ARF on every stream (medians over seeds).

Run::

    .venv/bin/python bench/prequential.py            # default: 20k samples, 3 seeds (minutes)
    .venv/bin/python bench/prequential.py --quick    # smoke: 5k samples, 1 seed, no file
    .venv/bin/python bench/prequential.py --full     # 50k samples, 5 seeds

Results go to ``bench/results/prequential.json`` (not for ``--quick`` unless ``--output``).
See docs/learning-benchmark.md for the method and the measured numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make ``bench`` importable from the repo root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.prequential_learners import (
    DEFAULT_LEARNERS,
    LEARNERS,
    FlywheelLearner,
    flywheel_available,
)
from bench.prequential_streams import STREAMS, Chunk, chunk_stream

__all__ = [
    "Profile",
    "RunResult",
    "main",
    "prequential_accuracy",
    "run_learner",
    "segment_accuracy",
    "summarize",
]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "prequential.json"
BASELINE = "river-arf"
SYSTEM = FlywheelLearner.name


@dataclass(frozen=True)
class Profile:
    samples: int
    seeds: tuple[int, ...]
    batch_size: int


PROFILES = {
    "quick": Profile(samples=5_000, seeds=(1,), batch_size=200),
    "default": Profile(samples=20_000, seeds=(1, 2, 3), batch_size=200),
    "full": Profile(samples=50_000, seeds=(1, 2, 3, 4, 5), batch_size=200),
}


@dataclass
class RunResult:
    stream: str
    learner: str
    seed: int
    samples: int
    scored: int
    accuracy: float
    wall_s: float
    # Accuracy per quarter of the scored stream: the drift streams change concept at
    # 1/4, 1/2, 3/4, so this shows how each learner recovers.
    quarters: list[float] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def prequential_accuracy(
    predictions: Sequence[bool], labels: Sequence[bool], warmup: int
) -> tuple[float, int]:
    """Mean accuracy over positions >= ``warmup``; (nan, 0) when nothing is left to score."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    pairs = list(zip(predictions[warmup:], labels[warmup:], strict=True))
    if not pairs:
        return float("nan"), 0
    return sum(p == y for p, y in pairs) / len(pairs), len(pairs)


def segment_accuracy(
    predictions: Sequence[bool], labels: Sequence[bool], warmup: int, segments: int = 4
) -> list[float]:
    """Accuracy on ``segments`` equal slices of the whole stream, warm-up rows left out."""
    n = len(labels)
    out: list[float] = []
    for k in range(segments):
        lo, hi = max(n * k // segments, warmup), n * (k + 1) // segments
        if hi <= lo:
            out.append(float("nan"))
            continue
        hits = sum(p == y for p, y in zip(predictions[lo:hi], labels[lo:hi], strict=True))
        out.append(hits / (hi - lo))
    return out


def run_learner(name: str, stream: str, seed: int, chunks: list[Chunk], warmup: int) -> RunResult:
    spec = STREAMS[stream]
    learner = LEARNERS[name](spec.task(), seed)
    predictions: list[bool] = []
    labels: list[bool] = []
    wall = 0.0
    for chunk in chunks:
        t0 = time.perf_counter()
        preds = learner.test_then_train(chunk)
        wall += time.perf_counter() - t0
        if len(preds) != len(chunk):
            raise RuntimeError(f"{name} returned {len(preds)} predictions for {len(chunk)} rows")
        predictions.extend(preds)
        labels.extend(chunk.labels)
    accuracy, scored = prequential_accuracy(predictions, labels, warmup)
    return RunResult(
        stream=stream,
        learner=name,
        seed=seed,
        samples=len(labels),
        scored=scored,
        accuracy=accuracy,
        wall_s=wall,
        quarters=segment_accuracy(predictions, labels, warmup),
        stats=learner.stats(),
    )


def summarize(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Medians over seeds per (stream, learner), in first-seen order."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        if r.error is None:
            groups.setdefault((r.stream, r.learner), []).append(r)
    rows = []
    for (stream, learner), runs in groups.items():
        rows.append(
            {
                "stream": stream,
                "learner": learner,
                "seeds": [r.seed for r in runs],
                "accuracy_median": statistics.median(r.accuracy for r in runs),
                "accuracy_min": min(r.accuracy for r in runs),
                "accuracy_max": max(r.accuracy for r in runs),
                "wall_s_median": statistics.median(r.wall_s for r in runs),
                "scored": runs[0].scored,
            }
        )
    return rows


def verdicts(summary: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stream: does Flywheel's median accuracy reach ARF's (the issue's target)?"""
    by = {(s["stream"], s["learner"]): s for s in summary}
    out: dict[str, dict[str, Any]] = {}
    for stream in dict.fromkeys(s["stream"] for s in summary):
        fw, arf = by.get((stream, SYSTEM)), by.get((stream, BASELINE))
        if fw is None or arf is None:
            out[stream] = {"met": None, "why": "flywheel or arf not run"}
            continue
        gap = fw["accuracy_median"] - arf["accuracy_median"]
        out[stream] = {"met": gap >= 0, "flywheel_minus_arf": round(gap, 4)}
    return out


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for pkg in ("river", "lightgbm", "numpy", "scikit-learn", "flywheel", "trainer"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        # The box is shared: the load at start says how noisy the wall times are.
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit,
    }


def format_table(summary: Sequence[dict[str, Any]], learners: Sequence[str]) -> str:
    by = {(s["stream"], s["learner"]): s for s in summary}
    streams = list(dict.fromkeys(s["stream"] for s in summary))
    width = 20
    head = f"{'stream':<17}" + "".join(f"{name:>{width}}" for name in learners)
    lines = [head, "-" * len(head)]
    for stream in streams:
        cells = []
        for name in learners:
            s = by.get((stream, name))
            cells.append(f"{s['accuracy_median']:.4f} ({s['wall_s_median']:6.1f}s)" if s else "-")
        lines.append(f"{stream:<17}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="5k samples, 1 seed, no file")
    mode.add_argument("--full", action="store_true", help="50k samples, 5 seeds")
    p.add_argument("--streams", nargs="+", choices=list(STREAMS), default=list(STREAMS))
    p.add_argument("--learners", nargs="+", choices=list(LEARNERS), default=list(DEFAULT_LEARNERS))
    p.add_argument("--samples", type=int, help="samples per synthetic stream")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (override the profile)")
    p.add_argument("--batch-size", type=int, help="micro-batch size (stream-ingest flush)")
    p.add_argument("--warmup", type=int, help="unscored first samples (default: one batch)")
    p.add_argument("--output", type=Path, help=f"JSON results (default {DEFAULT_OUTPUT})")
    p.add_argument("--no-output", action="store_true", help="print only")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile_name = "quick" if args.quick else "full" if args.full else "default"
    profile = PROFILES[profile_name]
    samples = args.samples or profile.samples
    seeds = tuple(args.seeds or profile.seeds)
    batch_size = args.batch_size or profile.batch_size
    warmup = batch_size if args.warmup is None else args.warmup
    output: Path | None = args.output or (None if args.quick else DEFAULT_OUTPUT)
    if args.no_output:
        output = None

    learners = list(args.learners)
    skipped: dict[str, str] = {}
    if SYSTEM in learners and (why := flywheel_available()) is not None:
        # Until the trainer's learner lands the harness still runs, and says so loudly.
        learners.remove(SYSTEM)
        skipped[SYSTEM] = why
        print(f"!! skipping {SYSTEM}: {why}", file=sys.stderr)

    machine = machine_info()
    print(
        f"prequential [{profile_name}] samples={samples} seeds={list(seeds)} "
        f"batch={batch_size} warmup={warmup} on {machine['cpu']} ({machine['cpus']} cpus, "
        f"load {machine['loadavg_at_start'][0]:.2f})",
        file=sys.stderr,
    )
    started = time.perf_counter()
    results: list[RunResult] = []
    for stream in args.streams:
        spec = STREAMS[stream]
        n = spec.size(samples)
        for seed in seeds:
            chunks = chunk_stream(spec.task(), spec.source(n, seed), batch_size)
            for name in learners:
                try:
                    result = run_learner(name, stream, seed, chunks, warmup)
                except Exception as exc:  # one broken learner must not hide the others
                    result = RunResult(stream, name, seed, n, 0, float("nan"), 0.0)
                    result.error = f"{type(exc).__name__}: {exc}"
                    print(f"!! {stream} seed={seed} {name}: {result.error}", file=sys.stderr)
                results.append(result)
                print(
                    f"  {stream:<16} seed={seed} {name:<12} acc={result.accuracy:.4f} "
                    f"wall={result.wall_s:6.2f}s {result.stats or ''}",
                    file=sys.stderr,
                )

    summary = summarize(results)
    verdict = verdicts(summary)
    print()
    print(f"Prequential accuracy, median over seeds {list(seeds)} (learner wall time):")
    print(format_table(summary, learners))
    if skipped:
        print(f"\nnot run: {skipped}")
    met = [s for s, v in verdict.items() if v["met"]]
    missed = [s for s, v in verdict.items() if v["met"] is False]
    if met or missed:
        print(f"\ntarget {SYSTEM} >= {BASELINE}: met on {met or 'none'}; missed on ", end="")
        print(missed or "none")
    print(f"total {time.perf_counter() - started:.0f}s")

    if output is not None:
        doc = {
            "benchmark": "prequential",
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": profile_name,
            "config": {
                "samples": samples,
                "seeds": list(seeds),
                "batch_size": batch_size,
                "warmup": warmup,
                "streams": {s: STREAMS[s].description for s in args.streams},
                "learners": learners,
            },
            "target": "flywheel accuracy >= river-arf accuracy on every stream (medians)",
            "verdicts": verdict,
            "skipped": skipped,
            "machine": machine,
            "summary": summary,
            "runs": [asdict(r) for r in results],
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(doc, indent=2, allow_nan=True) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
