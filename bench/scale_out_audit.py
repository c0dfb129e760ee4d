"""Scale-out under faults: two replicas each of stream-ingest, trainer and predictor, a
rolling SIGKILL-and-restart of every replica while feedback and prediction load run,
then an end-to-end audit.

One run:

1. a private stack (bench/scale_out_stack.py: own Kafka, Redis, state folder, free
   ports; 2 x stream-ingest, 2 x trainer, 2 x predictor) and six tasks whose keys
   cover the six partitions, so every replica owns work;
2. feedback at a steady rate (unique ids ``e00000000``...) and, once every task has a
   champion on both predictors, predictions at a steady rate through the SDK with
   both predictor replicas as endpoints;
3. for each replica of each service in turn: SIGKILL, ``pause_s`` down, restart
   (``LocalStack.restart``, the code behind ``flywheel stack restart --kill``), wait
   until healthy (the predictor: ready, models loaded) and, with ``settle``, until
   everything published before the kill is batched and trained;
4. stop the load, drain, and audit what was *committed* (read_committed):

   * every published id is in ``training.batches`` or ``feedback.dlq`` exactly once;
   * per task, the model versions in ``models.registry`` have unique numbers and
     strictly increasing ``events_trained``, and the newest one's ``events_trained``
     equals the task's events in ``training.batches`` (minus any batch the trainer
     dead-lettered). A batch learned twice after a SIGKILL mid-transaction would push
     it above; one skipped, below;
   * every prediction got a 200 within the SDK's total timeout (none fell through to
     an error), with retries and failovers to the other replica counted.

Prints one JSON document per run and a summary (medians over runs); ``--output``
writes it. The integration test tests/integration/scale runs one smaller round.

    .venv/bin/python bench/scale_out_audit.py --runs 3 --output bench/results/scale_out_audit.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make ``bench`` importable from the repo root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from bench.scale_out_load import (
    FeedbackLoad,
    PredictionProcess,
    PredictionSample,
    event_id,
    features,
    spread_task_names,
    task_definition,
)
from bench.scale_out_stack import SCALED, PrivateStack, Restart
from flywheel import serde
from flywheel.catalog import apply_tasks
from flywheel.compacted import CompactedReader
from flywheel.events import DeadLetter, ModelVersion, TrainingBatch
from flywheel.kafka import KafkaConfig
from flywheel.registry import ModelRegistry, decode_registry_record
from flywheel.topics import (
    FEEDBACK_DLQ,
    FEEDBACK_EVENTS,
    MODELS_REGISTRY,
    TRAINING_BATCHES,
    TopicSpec,
)

MAX_RECORD_BYTES = 16_000_000
SAMPLE_S = 0.2


@dataclass(frozen=True)
class AuditPlan:
    feedback_rate: float = 400.0  # events/s
    prediction_rate: float = 40.0  # predictions/s, spread over both predictor replicas
    min_events: int = 20_000  # publishing goes on until the kills are over and this many
    max_events: int = 200_000
    replicas: int = 2
    tasks: int = 6
    pause_s: float = 1.0  # how long a killed replica stays down before its restart
    settle: bool = True  # wait for the pipeline to catch up after each kill
    settle_timeout_s: float = 60.0
    steady_s: float = 5.0  # load without faults before the first and after the last kill
    # Which processes to kill, in order; empty = every replica of every scaled service.
    victims: tuple[str, ...] = ()
    drain_timeout_s: float = 120.0
    prediction_timeout_s: float = 2.0  # the SDK's total budget per prediction


async def read_topic(
    kafka: KafkaConfig, spec: TopicSpec, *, committed: bool = True
) -> list[tuple[bytes | None, bytes]]:
    """Every committed record of ``spec`` now, all partitions (tombstones left out).

    ``committed=False`` also returns what aborted transactions wrote: the records a
    consumer without read_committed would count.
    """
    out: list[tuple[bytes | None, bytes]] = []

    def keep(key: bytes | None, value: bytes | None) -> None:
        if value is not None:
            out.append((key, value))

    reader = CompactedReader(kafka, kafka.topic(spec), keep, read_committed=committed)
    try:
        await reader.load()
    finally:
        await reader.stop()
    return out


class Progress:
    """How far the pipeline got, sampled: ids batched (as a prefix of 0..n) and trained.

    Only for timing recoveries while the run goes on; the verdict comes from a fresh
    read of the committed topics at the end (:func:`audit_pipeline`).
    """

    def __init__(self, kafka: KafkaConfig, tasks: list[str]) -> None:
        self.kafka = kafka
        self.tasks = tasks
        self._seen = bytearray()
        self.prefix = 0  # events 0..prefix-1 are all batched
        self.trained: dict[str, int] = dict.fromkeys(tasks, 0)
        self.timeline: list[tuple[float, int, dict[str, int]]] = []

    def expected_trained(self, published: int) -> dict[str, int]:
        count = len(self.tasks)
        return {
            task: published // count + (1 if index < published % count else 0)
            for index, task in enumerate(self.tasks)
        }

    def caught_up(self, published: int, sample: tuple[int, dict[str, int]] | None = None) -> bool:
        prefix, trained = sample or (self.prefix, self.trained)
        wanted = self.expected_trained(published)
        return prefix >= published and all(trained[t] >= wanted[t] for t in self.tasks)

    def caught_up_at(self, published: int, since: float) -> float | None:
        for at, prefix, trained in self.timeline:
            if at >= since and self.caught_up(published, (prefix, trained)):
                return at
        return None

    def _mark(self, batch: TrainingBatch) -> None:
        for eid in batch.event_ids:
            if eid.startswith("e") and eid[1:].isdigit():
                index = int(eid[1:])
                if index >= len(self._seen):
                    self._seen.extend(bytes(index + 1 - len(self._seen) + 10_000))
                self._seen[index] = 1
        while self.prefix < len(self._seen) and self._seen[self.prefix]:
            self.prefix += 1

    async def _batches(self) -> None:
        def mark(_key: bytes | None, value: bytes | None) -> None:
            if value is not None:
                self._mark(serde.decode(TrainingBatch, value, max_bytes=MAX_RECORD_BYTES))

        reader = CompactedReader(self.kafka, self.kafka.topic(TRAINING_BATCHES), mark)
        try:
            await reader.load()
            reader.follow()
            await asyncio.Event().wait()  # until cancelled
        finally:
            await reader.stop()

    async def _registry(self) -> None:
        registry = ModelRegistry(self.kafka)
        await registry.start(follow=False)
        try:
            while True:
                await registry.catch_up()
                for task in self.tasks:
                    versions = registry.versions(task)
                    self.trained[task] = versions[-1].events_trained if versions else 0
                self.timeline.append((time.monotonic(), self.prefix, dict(self.trained)))
                await asyncio.sleep(SAMPLE_S)
        finally:
            await registry.stop()

    @contextlib.asynccontextmanager
    async def watching(self) -> Any:
        tasks = [asyncio.create_task(self._batches()), asyncio.create_task(self._registry())]
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def until_caught_up(self, published: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.caught_up(published):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(SAMPLE_S)
        return True


async def wait_for_models(endpoints: list[str], tasks: list[str], timeout_s: float) -> float:
    """Seconds until every replica answers 200 for every task (each has a champion)."""
    started = time.monotonic()
    pending = {(endpoint, task) for endpoint in endpoints for task in tasks}
    row = features(random.Random(1))
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
        while pending:
            for endpoint, task in sorted(pending):
                with contextlib.suppress(httpx.HTTPError):
                    answer = await http.post(
                        f"{endpoint}/v1/tasks/{task}/predict", json={"features": row}
                    )
                    if answer.status_code == 200:
                        pending.discard((endpoint, task))
            if pending and time.monotonic() - started > timeout_s:
                raise TimeoutError(f"no model within {timeout_s}s for {sorted(pending)}")
            await asyncio.sleep(0.5)
    return time.monotonic() - started


async def audit_pipeline(kafka: KafkaConfig, tasks: list[str], published: int) -> dict[str, Any]:
    """The verdict on feedback and training, from the committed topics only."""
    expected = {event_id(i) for i in range(published)}
    batched: Counter[str] = Counter()
    batched_per_task: Counter[str] = Counter()
    for _, value in await read_topic(kafka, TRAINING_BATCHES):
        batch = serde.decode(TrainingBatch, value, max_bytes=MAX_RECORD_BYTES)
        batched.update(batch.event_ids)
        batched_per_task[batch.task] += len(batch)
    rejected: Counter[str] = Counter()  # by stream-ingest: feedback events
    rejected_reasons: Counter[str] = Counter()
    untrained_per_task: Counter[str] = Counter()  # batches the trainer dead-lettered
    for _, value in await read_topic(kafka, FEEDBACK_DLQ):
        letter = serde.decode(DeadLetter, value, max_bytes=MAX_RECORD_BYTES)
        original = base64.b64decode(letter.original_b64)
        rejected_reasons[letter.reason] += 1
        if letter.source_topic == kafka.topic(FEEDBACK_EVENTS):
            rejected[str(orjson.loads(original).get("event_id"))] += 1
        elif letter.source_topic == kafka.topic(TRAINING_BATCHES):
            batch = serde.decode(TrainingBatch, original, max_bytes=MAX_RECORD_BYTES)
            untrained_per_task[batch.task] += len(batch)
    counted = batched + rejected
    lost = sorted(expected - set(counted))
    twice = {eid: n for eid, n in counted.items() if n > 1}
    foreign = sorted(set(counted) - expected)

    versions: dict[str, list[ModelVersion]] = defaultdict(list)
    for _, value in await read_topic(kafka, MODELS_REGISTRY):
        record = decode_registry_record(value)
        if isinstance(record, ModelVersion):
            versions[record.task].append(record)
    # What SIGKILLs left in open transactions, aborted by the next owner: there in the
    # log, invisible to read_committed. Non-zero shows the kills did hit mid-transaction.
    aborted_events = sum(
        len(serde.decode(TrainingBatch, value, max_bytes=MAX_RECORD_BYTES))
        for _, value in await read_topic(kafka, TRAINING_BATCHES, committed=False)
    ) - sum(batched.values())
    aborted_versions = sum(
        isinstance(decode_registry_record(value), ModelVersion)
        for _, value in await read_topic(kafka, MODELS_REGISTRY, committed=False)
    ) - sum(len(mine) for mine in versions.values())
    training: dict[str, dict[str, Any]] = {}
    for task in tasks:
        mine = sorted(versions[task], key=lambda v: v.version)
        numbers = Counter(v.version for v in mine)
        trained = [v.events_trained for v in mine]
        wanted = batched_per_task[task] - untrained_per_task[task]
        final = trained[-1] if trained else 0
        training[task] = {
            "versions": len(mine),
            "duplicate_versions": sorted(n for n, c in numbers.items() if c > 1),
            "events_trained_increasing": all(a < b for a, b in itertools.pairwise(trained)),
            "events_trained": final,
            "events_batched": batched_per_task[task],
            "events_dead_lettered_by_trainer": untrained_per_task[task],
            "trained_twice": max(0, final - wanted),
            "not_trained": max(0, wanted - final),
        }
    trainer_ok = all(
        not t["duplicate_versions"]
        and t["events_trained_increasing"]
        and t["trained_twice"] == 0
        and t["not_trained"] == 0
        for t in training.values()
    )
    return {
        "events_published": published,
        "events_batched": sum(batched.values()),
        "events_dead_lettered": sum(rejected.values()),
        "dead_letter_reasons": dict(rejected_reasons),
        "events_lost": len(lost),
        "events_counted_twice": len(twice),
        "events_unexpected": len(foreign),
        "examples": {"lost": lost[:5], "twice": list(twice)[:5], "unexpected": foreign[:5]},
        "trainer": training,
        "events_trained_total": sum(t["events_trained"] for t in training.values()),
        "aborted_transactions": {
            "batched_events": aborted_events,
            "model_versions": aborted_versions,
        },
        "feedback_ok": not lost and not twice and not foreign,
        "trainer_ok": trainer_ok,
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def prediction_summary(
    samples: list[PredictionSample], window: tuple[float, float]
) -> dict[str, Any]:
    """Counts and latencies (ms), overall and for the calls made while replicas were killed."""

    def stats(chosen: list[PredictionSample]) -> dict[str, Any]:
        latencies = [s.latency_s * 1000 for s in chosen if s.ok]
        return {
            "requests": len(chosen),
            "failed": sum(not s.ok for s in chosen),
            "retried": sum(len(s.attempts) > 1 for s in chosen),
            "failed_over": sum(len(set(s.attempts)) > 1 for s in chosen),
            "p50_ms": _round(_percentile(latencies, 0.5)),
            "p99_ms": _round(_percentile(latencies, 0.99)),
            "max_ms": _round(max(latencies, default=0.0)),
        }

    before = [s for s in samples if s.at < window[0]]
    during = [s for s in samples if window[0] <= s.at <= window[1]]
    attempts = Counter(a for s in samples for a in s.attempts)
    return {
        "all": stats(samples),
        "before_kills": stats(before),  # the reference: same load, no faults yet
        "during_kills": stats(during),
        "attempts_per_endpoint": dict(attempts),
        "errors": sorted({s.error for s in samples if s.error})[:5],
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


async def run_once(
    plan: AuditPlan, root: Path, echo: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """One audited run on a private stack; the stack is stopped (by pid) whatever happens."""
    begun = time.monotonic()
    async with PrivateStack(root, replicas=plan.replicas, echo=echo) as stack:
        stack_up_s = time.monotonic() - begun
        kafka = stack.kafka()
        tasks = spread_task_names(plan.tasks)
        await apply_tasks(kafka, [task_definition(name) for name in tasks])
        feedback = FeedbackLoad(kafka, tasks, plan.feedback_rate, plan.min_events, plan.max_events)
        predictions = PredictionProcess(
            stack.predictor_endpoints(),
            tasks,
            plan.prediction_rate,
            plan.prediction_timeout_s,
            root / "predictions.json",
        )
        progress = Progress(kafka, tasks)
        stop_feedback = asyncio.Event()
        kills: list[dict[str, Any]] = []
        async with progress.watching():
            feeding = asyncio.create_task(feedback.run(stop_feedback))
            predicting = False
            samples: list[PredictionSample] = []
            try:
                models = asyncio.create_task(
                    wait_for_models(stack.predictor_endpoints(), tasks, 90)
                )
                await asyncio.wait([models, feeding], return_when=asyncio.FIRST_COMPLETED)
                if feeding.done():
                    models.cancel()
                    feeding.result()  # publishing failed: raise why
                first_models_s = await models
                echo(f"every task has a champion on every predictor after {first_models_s:.1f}s")
                predicting = True
                await asyncio.to_thread(predictions.start)
                await asyncio.sleep(plan.steady_s)
                window_start = time.monotonic()
                restarts: list[tuple[Restart, int]] = []
                victims = plan.victims or tuple(
                    name for service in SCALED for name in stack.replica_names(service)
                )
                for name in victims:
                    restart = await asyncio.to_thread(stack.restart, name, pause_s=plan.pause_s)
                    before = feedback.published_before(restart.killed_at)
                    back_s = restart.healthy_at - restart.killed_at
                    echo(f"{name}: killed, healthy again after {back_s:.1f}s")
                    if plan.settle:
                        await progress.until_caught_up(before, plan.settle_timeout_s)
                    restarts.append((restart, before))
                window_end = time.monotonic()
                await asyncio.sleep(plan.steady_s)
                samples = await asyncio.to_thread(predictions.stop)
                predicting = False
                stop_feedback.set()  # it still publishes up to min_events
                await feeding
                publishing_s = feedback.acked[-1][0] - feedback.acked[0][0] if feedback.acked else 0
                drained = await progress.until_caught_up(feedback.published, plan.drain_timeout_s)
                drained_at = time.monotonic()
                await asyncio.sleep(2.0)  # anything still in flight would show as a duplicate
            finally:
                stop_feedback.set()
                if predicting:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(predictions.stop)
                if not feeding.done():
                    feeding.cancel()
                    with contextlib.suppress(BaseException):
                        await feeding
            for restart, before in restarts:
                caught = progress.caught_up_at(before, restart.killed_at)
                kills.append({
                    "replica": restart.name,
                    "outcome": restart.stopped.outcome,
                    "restart_s": round(restart.healthy_at - restart.killed_at, 2),
                    "caught_up_s": None if caught is None else round(caught - restart.killed_at, 2),
                    "events_published_before_kill": before,
                })  # fmt: skip
        verdict = await audit_pipeline(kafka, tasks, feedback.published)
    served = prediction_summary(samples, (window_start, window_end))
    passed = (
        drained
        and verdict["feedback_ok"]
        and verdict["trainer_ok"]
        and served["all"]["failed"] == 0
        and len(kills) == (len(plan.victims) or len(SCALED) * plan.replicas)
    )
    return {
        "passed": passed,
        "drained": drained,
        "stack_up_s": round(stack_up_s, 1),
        "first_champions_s": round(first_models_s, 1),
        "feedback_events_per_s": round(feedback.published / publishing_s, 1)
        if publishing_s
        else None,
        "pipeline_events_per_s": round(feedback.published / (drained_at - feedback.acked[0][0]), 1),
        "kill_window_s": round(window_end - window_start, 1),
        "kills": kills,
        "predictions": served,
        "audit": verdict,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs of the numbers the README quotes."""

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 2) if present else None

    per_service: dict[str, dict[str, float | None]] = {}
    for service in SCALED:
        mine = [k for run in runs for k in run["kills"] if k["replica"].startswith(service)]
        per_service[service] = {
            "restart_s": median([k["restart_s"] for k in mine]),
            "caught_up_s": median([k["caught_up_s"] for k in mine]),
        }
    during = [run["predictions"]["during_kills"] for run in runs]
    before = [run["predictions"]["before_kills"] for run in runs]
    return {
        "runs": len(runs),
        "passed": sum(run["passed"] for run in runs),
        "events_published": median([run["audit"]["events_published"] for run in runs]),
        "events_lost": sum(run["audit"]["events_lost"] for run in runs),
        "events_counted_twice": sum(run["audit"]["events_counted_twice"] for run in runs),
        "aborted_batched_events": sum(
            run["audit"]["aborted_transactions"]["batched_events"] for run in runs
        ),
        "aborted_model_versions": sum(
            run["audit"]["aborted_transactions"]["model_versions"] for run in runs
        ),
        "events_trained_twice": sum(
            t["trained_twice"] for run in runs for t in run["audit"]["trainer"].values()
        ),
        "feedback_events_per_s": median([run["feedback_events_per_s"] for run in runs]),
        "pipeline_events_per_s": median([run["pipeline_events_per_s"] for run in runs]),
        "predictions": sum(run["predictions"]["all"]["requests"] for run in runs),
        "predictions_failed": sum(run["predictions"]["all"]["failed"] for run in runs),
        "predictions_retried": sum(run["predictions"]["all"]["retried"] for run in runs),
        "predictions_failed_over": sum(run["predictions"]["all"]["failed_over"] for run in runs),
        "prediction_p50_ms_during_kills": median([d["p50_ms"] for d in during]),
        "prediction_p99_ms_during_kills": median([d["p99_ms"] for d in during]),
        "prediction_p50_ms_before_kills": median([b["p50_ms"] for b in before]),
        "prediction_p99_ms_before_kills": median([b["p99_ms"] for b in before]),
        "recovery_per_kill": per_service,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--feedback-rate", type=float, default=AuditPlan.feedback_rate)
    parser.add_argument("--prediction-rate", type=float, default=AuditPlan.prediction_rate)
    parser.add_argument("--min-events", type=int, default=AuditPlan.min_events)
    parser.add_argument("--pause", type=float, default=AuditPlan.pause_s)
    parser.add_argument("--no-settle", action="store_true", help="kill the next replica at once")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--keep-logs", type=Path, help="copy each run's service logs here")
    args = parser.parse_args()
    plan = AuditPlan(
        feedback_rate=args.feedback_rate,
        prediction_rate=args.prediction_rate,
        min_events=args.min_events,
        pause_s=args.pause,
        settle=not args.no_settle,
    )

    def echo(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    # Wall-clock numbers move with what else the machine runs: record how busy it was.
    machine: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m_at_start": os.getloadavg()[0]}
    runs = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="flywheel-scale-") as root:
            echo(f"run {index + 1}/{args.runs}")
            try:
                run = asyncio.run(run_once(plan, Path(root), echo))
            finally:
                if args.keep_logs:
                    logs = Path(root) / "state" / "logs"
                    shutil.copytree(logs, args.keep_logs / f"run-{index + 1}", dirs_exist_ok=True)
            echo(f"run {index + 1}: {'PASS' if run['passed'] else 'FAIL'}")
            runs.append(run)
    machine["load_avg_1m_at_end"] = os.getloadavg()[0]
    report = {"plan": asdict(plan), "machine": machine, "summary": summarise(runs), "runs": runs}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
