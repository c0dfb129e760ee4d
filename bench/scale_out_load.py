"""Load for the scale-out audit: feedback at a steady rate, predictions through the SDK.

Feedback event ``i`` has id ``e0000000i`` and goes to task ``tasks[i % len(tasks)]``,
so the audit knows exactly which ids must come out of the pipeline once, and for
which task. Predictions go through :class:`flywheel_client.AsyncFlywheelClient` with
every predictor replica as an endpoint, as an application would; a transport wrapper
records each HTTP attempt a prediction made, so retries and failovers are counted
rather than inferred. The prediction load runs in a process of its own
(:class:`PredictionProcess`): sharing an event loop with the audit's Kafka readers
would add their pauses to the measured latencies.
"""

from __future__ import annotations

import asyncio
import contextvars
import multiprocessing
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import orjson
from aiokafka.partitioner import murmur2

from bench.ingest_throughput import task as ingest_task
from flywheel.kafka import KafkaConfig, make_producer
from flywheel.tasks import FlushPolicy, TaskDefinition, TrainingPolicy
from flywheel.topics import FEEDBACK_EVENTS, TRAINING_BATCHES
from flywheel_client import AsyncFlywheelClient, FlywheelClientError

AGENTS = ("planner", "coder", "reviewer")
TICK_S = 0.05


def event_id(index: int) -> str:
    return f"e{index:08d}"


def spread_task_names(count: int, stem: str = "scale.t") -> list[str]:
    """``count`` task names whose keys land on distinct partitions of training.batches.

    Tasks are the partition keys; names picked this way give every partition (and so
    every replica of the consumer groups) work, which random names would not promise.
    """
    partitions = TRAINING_BATCHES.partitions
    assert FEEDBACK_EVENTS.partitions == partitions
    names: dict[int, str] = {}
    index = 0
    while len(names) < min(count, partitions):
        name = f"{stem}{index}"
        names.setdefault((murmur2(name.encode()) & 0x7FFFFFFF) % partitions, name)
        index += 1
    return [names[p] for p in sorted(names)][:count]


def task_definition(name: str) -> TaskDefinition:
    """The ingest benchmark's task (three features, binary), trained small and cheap:
    the audit is about counting, not model quality."""
    return ingest_task(name).model_copy(
        update={
            "flush": FlushPolicy(max_events=500, max_age_s=1.0),
            "training": TrainingPolicy(max_trees=40, trees_per_update=10, window_events=2_000),
        }
    )


def features(rng: random.Random) -> dict[str, object]:
    return {
        "steps": rng.randint(0, 20),
        "retries": round(rng.random() * 3, 3),
        "agent": rng.choice(AGENTS),
    }


def feedback_value(index: int, task: str, rng: random.Random) -> bytes:
    steps, agent = rng.randint(0, 20), rng.choice(AGENTS)
    row = {"steps": steps, "retries": round(rng.random() * 3, 3), "agent": agent}
    label = steps > 10 or agent == "coder"
    return orjson.dumps(
        {"event_id": event_id(index), "task": task, "features": row, "label": label}
    )


@dataclass
class FeedbackLoad:
    """Publishes events ``0, 1, 2, ...`` at ``rate``/s until stopped (but at least
    ``min_events``) or ``max_events``."""

    kafka: KafkaConfig
    tasks: list[str]
    rate: float
    min_events: int
    max_events: int
    published: int = 0
    # time.monotonic() when the broker acknowledged each block of events: (time, count).
    acked: list[tuple[float, int]] = field(default_factory=list)

    def task_of(self, index: int) -> str:
        return self.tasks[index % len(self.tasks)]

    def published_before(self, at: float) -> int:
        """How many events the broker had acknowledged at monotonic time ``at``."""
        count = 0
        for when, total in self.acked:
            if when > at:
                break
            count = total
        return count

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(7)
        producer = make_producer(self.kafka, linger_ms=5)
        await producer.start()
        topic = self.kafka.topic(FEEDBACK_EVENTS)
        started = time.monotonic()
        try:
            while self.published < self.max_events and not (
                stop.is_set() and self.published >= self.min_events
            ):
                due = min(self.max_events, int((time.monotonic() - started) * self.rate))
                sends = []
                for index in range(self.published, due):
                    task = self.task_of(index)
                    value = feedback_value(index, task, rng)
                    sends.append(await producer.send(topic, value, key=task.encode()))
                if sends:
                    await asyncio.gather(*sends)
                    self.published = due
                    self.acked.append((time.monotonic(), due))
                await asyncio.sleep(TICK_S)
        finally:
            await producer.stop()


# The attempts of the prediction running in the current task (see PredictionLoad).
_ATTEMPTS: contextvars.ContextVar[list[str]] = contextvars.ContextVar("attempts")


class CountingTransport(httpx.AsyncBaseTransport):
    """Records the endpoint of every HTTP attempt into the calling task's list."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempts = _ATTEMPTS.get(None)
        if attempts is not None:
            attempts.append(f"{request.url.host}:{request.url.port}")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True, slots=True)
class PredictionSample:
    at: float  # time.monotonic() at the call
    latency_s: float
    ok: bool
    attempts: tuple[str, ...]
    error: str | None = None


@dataclass
class PredictionLoad:
    """``rate`` predictions/s through the SDK over ``endpoints`` until stopped."""

    endpoints: list[str]
    tasks: list[str]
    rate: float
    timeout_s: float = 2.0
    samples: list[PredictionSample] = field(default_factory=list)

    async def _one(self, client: AsyncFlywheelClient, task: str, row: dict[str, object]) -> None:
        attempts: list[str] = []
        _ATTEMPTS.set(attempts)
        started = time.monotonic()
        error: str | None = None
        try:
            await client.predict(task, row)  # type: ignore[arg-type]
        except FlywheelClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.samples.append(
            PredictionSample(
                started, time.monotonic() - started, error is None, tuple(attempts), error
            )
        )

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(11)
        client = AsyncFlywheelClient(
            self.endpoints, timeout_s=self.timeout_s, transport=CountingTransport()
        )
        running: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        sent = 0
        try:
            while not stop.is_set():
                due = int((time.monotonic() - started) * self.rate)
                for _ in range(sent, due):
                    task = self.tasks[sent % len(self.tasks)]
                    call = asyncio.create_task(self._one(client, task, features(rng)))
                    running.add(call)
                    call.add_done_callback(running.discard)
                    sent += 1
                await asyncio.sleep(TICK_S)
            if running:
                await asyncio.gather(*running)
        finally:
            await client.close()


def _predict_until(
    *,
    endpoints: list[str],
    tasks: list[str],
    rate: float,
    timeout_s: float,
    ready: EventLike,
    stop: EventLike,
    out: str,
) -> None:
    """The child process: predict at ``rate`` until ``stop`` is set, samples to ``out``."""
    load = PredictionLoad(endpoints, tasks, rate, timeout_s)

    async def main() -> None:
        stopped = asyncio.Event()
        running = asyncio.create_task(load.run(stopped))
        ready.set()  # imports done, the load starts now
        await asyncio.to_thread(stop.wait)
        stopped.set()
        await running

    asyncio.run(main())
    Path(out).write_bytes(orjson.dumps([asdict(sample) for sample in load.samples]))


class EventLike(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...

    def set(self) -> None: ...


class PredictionProcess:
    """:class:`PredictionLoad` in a child process; ``stop()`` returns its samples."""

    def __init__(
        self, endpoints: list[str], tasks: list[str], rate: float, timeout_s: float, out: Path
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._out = out
        self._process = context.Process(
            target=_predict_until,
            kwargs={
                "endpoints": endpoints,
                "tasks": tasks,
                "rate": rate,
                "timeout_s": timeout_s,
                "ready": self._ready,
                "stop": self._stop,
                "out": str(out),
            },
            name="prediction-load",
            daemon=True,
        )

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the child and return once it is predicting (its imports take seconds)."""
        self._process.start()
        if not self._ready.wait(timeout_s):
            self._process.kill()
            self._process.join()
            raise RuntimeError(f"the prediction load did not start within {timeout_s}s")

    def stop(self, timeout_s: float = 30.0) -> list[PredictionSample]:
        self._stop.set()
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
            raise RuntimeError("the prediction load did not stop")
        if self._process.exitcode != 0:
            raise RuntimeError(f"the prediction load failed (exit {self._process.exitcode})")
        return [
            PredictionSample(**{**raw, "attempts": tuple(raw["attempts"])})
            for raw in orjson.loads(self._out.read_bytes())
        ]
