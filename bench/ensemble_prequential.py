"""Ensemble vs single model, prequential accuracy on the learning-loop benchmark's streams.

The same streams, seeds, micro-batch size and warm-up as ``bench/prequential.py``
(River's Phishing and Bananas, SEA and Agrawal with abrupt and gradual drift), fed to
the real trainer code (:func:`trainer.ensemble.make_learner`: ``TaskLearner`` for the
single model, ``EnsembleLearner`` for the ensembles) in the same run on the same rows:

* ``single``           - the task as the learning-loop benchmark defines it (one model,
  the default training policy: ``auto``, 5,000-event window);
* ``ensemble-average`` - the same task with a long-window member (20,000 events) and a
  short-window member (1,000 events), raw scores averaged;
* ``ensemble-stacked`` - the same two members, weights and bias fitted on the members'
  recent out-of-sample scores (trainer.stacking).

Each learner predicts a batch with its served model (``predict_proba``: calibrated,
unseen categories as missing) before ``score_then_learn`` learns it. Accuracy is the
mean over every sample after the warm-up (the first batch); the CPU time per batch is
``time.process_time`` around predict + learn (the trainer runs LightGBM single-threaded,
so this is the trainer's own cost). Medians over seeds.

Run::

    .venv/bin/python bench/ensemble_prequential.py            # 20k samples, 3 seeds
    .venv/bin/python bench/ensemble_prequential.py --quick    # 5k samples, 1 seed, no file

Results: ``bench/results/ensemble_prequential.json``; docs/ensembles.md has the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.prequential import PROFILES, machine_info, prequential_accuracy, segment_accuracy
from bench.prequential_streams import STREAMS, Chunk, chunk_stream
from flywheel.tasks import TaskDefinition
from trainer.ensemble import make_learner

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "ensemble_prequential.json"

MEMBERS = [
    {"name": "long", "training": {"window_events": 20_000}},
    {"name": "short", "training": {"window_events": 1_000}},
]


def _single(task: TaskDefinition) -> TaskDefinition:
    return task


def _ensemble(combine: str) -> Callable[[TaskDefinition], TaskDefinition]:
    def build(task: TaskDefinition) -> TaskDefinition:
        return TaskDefinition.model_validate(
            {**task.model_dump(), "ensemble": {"combine": combine, "members": MEMBERS}}
        )

    return build


VARIANTS: dict[str, Callable[[TaskDefinition], TaskDefinition]] = {
    "single": _single,
    "ensemble-average": _ensemble("average"),
    "ensemble-stacked": _ensemble("stacked"),
}


@dataclass
class Run:
    stream: str
    variant: str
    seed: int
    accuracy: float
    scored: int
    cpu_ms_per_batch: float
    wall_s: float
    quarters: list[float]
    stats: dict[str, Any] = field(default_factory=dict)


def run_variant(variant: str, stream: str, seed: int, chunks: list[Chunk], warmup: int) -> Run:
    task = VARIANTS[variant](STREAMS[stream].task())
    learner = make_learner(task, seed=seed)
    predictions: list[bool] = []
    labels: list[bool] = []
    cpu: list[float] = []
    promotions = 0
    weights: list[tuple[float, ...]] = []
    wall = time.perf_counter()
    for chunk in chunks:
        c0 = time.process_time()
        if learner.champion is None:
            preds = [False] * len(chunk)  # cold start: only the warm-up batch
        else:
            proba = np.asarray(learner.predict_proba(chunk.rows), dtype=np.float64)
            preds = [bool(p > 0.5) for p in proba]
        report = learner.score_then_learn(chunk.batch)
        cpu.append(time.process_time() - c0)
        promotions += report.promotion is not None
        if report.candidate.ensemble is not None:
            weights.append(report.candidate.ensemble.weights)
        predictions.extend(preds)
        labels.extend(chunk.labels)
    wall = time.perf_counter() - wall
    accuracy, scored = prequential_accuracy(predictions, labels, warmup)
    champion = learner.champion
    stats: dict[str, Any] = {
        "promotions": promotions,
        "trees": 0 if champion is None else champion.record.trees,
        "model_bytes": 0 if champion is None else len(champion.record.model_text),
    }
    if weights:
        # Stacked weights over the run: where they started, ended, and the extremes.
        per_member = list(zip(*weights, strict=True))
        stats["final_weights"] = list(weights[-1])
        stats["weight_range"] = [[min(w), max(w)] for w in per_member]
    return Run(
        stream=stream,
        variant=variant,
        seed=seed,
        accuracy=accuracy,
        scored=scored,
        cpu_ms_per_batch=1000 * statistics.mean(cpu),
        wall_s=wall,
        quarters=segment_accuracy(predictions, labels, warmup),
        stats=stats,
    )


def summarize(runs: Sequence[Run]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.stream, r.variant), []).append(r)
    out = []
    for (stream, variant), rs in groups.items():
        out.append(
            {
                "stream": stream,
                "variant": variant,
                "seeds": [r.seed for r in rs],
                "accuracy_median": statistics.median(r.accuracy for r in rs),
                "accuracy_min": min(r.accuracy for r in rs),
                "accuracy_max": max(r.accuracy for r in rs),
                "cpu_ms_per_batch_median": statistics.median(r.cpu_ms_per_batch for r in rs),
                "quarters_median": [
                    statistics.median(r.quarters[q] for r in rs) for q in range(len(rs[0].quarters))
                ],
                "scored": rs[0].scored,
            }
        )
    return out


def comparisons(summary: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stream: each ensemble's median accuracy minus the single model's."""
    by = {(s["stream"], s["variant"]): s for s in summary}
    out: dict[str, dict[str, float]] = {}
    for stream in dict.fromkeys(s["stream"] for s in summary):
        single = by.get((stream, "single"))
        if single is None:
            continue
        out[stream] = {
            f"{v}_minus_single": round(
                by[(stream, v)]["accuracy_median"] - single["accuracy_median"], 4
            )
            for v in VARIANTS
            if v != "single" and (stream, v) in by
        }
    return out


def format_table(summary: Sequence[dict[str, Any]], variants: Sequence[str]) -> str:
    by = {(s["stream"], s["variant"]): s for s in summary}
    width = 24
    head = f"{'stream':<17}" + "".join(f"{v:>{width}}" for v in variants)
    lines = [head, "-" * len(head)]
    for stream in dict.fromkeys(s["stream"] for s in summary):
        cells = []
        for v in variants:
            s = by.get((stream, v))
            cells.append(
                f"{s['accuracy_median']:.4f} ({s['cpu_ms_per_batch_median']:5.1f} ms)" if s else "-"
            )
        lines.append(f"{stream:<17}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5k samples, 1 seed, no file")
    p.add_argument("--streams", nargs="+", choices=list(STREAMS), default=list(STREAMS))
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--samples", type=int)
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    profile_name = "quick" if args.quick else "default"
    profile = PROFILES[profile_name]
    samples = args.samples or profile.samples
    seeds = tuple(args.seeds or profile.seeds)
    batch_size = profile.batch_size
    warmup = batch_size
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    machine = machine_info()
    print(
        f"ensemble prequential [{profile_name}] samples={samples} seeds={list(seeds)} "
        f"batch={batch_size} (load {machine['loadavg_at_start'][0]:.2f})",
        file=sys.stderr,
    )
    started = time.perf_counter()
    runs: list[Run] = []
    for stream in args.streams:
        spec = STREAMS[stream]
        n = spec.size(samples)
        for seed in seeds:
            chunks = chunk_stream(spec.task(), spec.source(n, seed), batch_size)
            for variant in args.variants:
                run = run_variant(variant, stream, seed, chunks, warmup)
                runs.append(run)
                print(
                    f"  {stream:<16} seed={seed} {variant:<17} acc={run.accuracy:.4f} "
                    f"cpu={run.cpu_ms_per_batch:6.1f} ms/batch {run.stats}",
                    file=sys.stderr,
                )
    summary = summarize(runs)
    print(f"\nPrequential accuracy, median over seeds {list(seeds)} (trainer CPU per batch):")
    print(format_table(summary, args.variants))
    print(f"total {time.perf_counter() - started:.0f}s")
    if output is not None:
        doc = {
            "benchmark": "ensemble_prequential",
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": profile_name,
            "config": {
                "samples": samples,
                "seeds": list(seeds),
                "batch_size": batch_size,
                "warmup": warmup,
                "streams": {s: STREAMS[s].description for s in args.streams},
                "variants": list(args.variants),
                "ensemble_members": MEMBERS,
                "single": "the stream's task, default training policy (auto, 5,000-event window)",
            },
            "comparisons": comparisons(summary),
            "machine": machine,
            "summary": summary,
            "runs": [asdict(r) for r in runs],
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
