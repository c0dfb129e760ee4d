"""Streams for the prequential benchmark, as Flywheel would see them.

Each stream is a River dataset turned into what stream-ingest hands the trainer: a
:class:`~flywheel.tasks.TaskDefinition` (typed features, binary objective, bool label) and
micro-batches of typed rows with their labels, plus the columnar
:class:`~flywheel.events.TrainingBatch` the trainer consumes. Every learner in the
benchmark sees exactly the same rows in the same order, so differences in accuracy are the
learners', not the adapters'.

Streams (the first two are River's bundled real datasets, the rest synthetic drift streams
shaped like the SEA_A/SEA_G/AGR_A/AGR_G streams of the ARF paper, Gomes et al. 2017):

- ``phishing`` (1,250 rows) and ``bananas`` (5,300 rows): fixed order, so seeds only change
  the learners' own randomness.
- ``sea-abrupt`` / ``sea-gradual``: SEA with 10% label noise, concepts 0 -> 1 -> 2 -> 3 at
  1/4, 1/2 and 3/4 of the stream, nested ``ConceptDriftStream``s.
- ``agrawal-abrupt`` / ``agrawal-gradual``: Agrawal classification functions 0 -> 1 -> 2 -> 3
  at the same positions. ``car`` and ``zipcode`` are nominal codes, declared as categories.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flywheel.events import TrainingBatch
from flywheel.tasks import (
    FeatureSpec,
    FeatureType,
    FeatureValue,
    LabelSpec,
    LabelType,
    Objective,
    TaskDefinition,
)

__all__ = [
    "STREAMS",
    "Chunk",
    "StreamSpec",
    "chunk_stream",
    "drift_positions",
    "make_task",
]

Row = dict[str, FeatureValue]


@dataclass(frozen=True)
class Chunk:
    """One micro-batch, in both shapes: rows for per-sample learners, a TrainingBatch for
    the trainer. ``start`` is the stream position of the first row (for the warm-up)."""

    index: int
    start: int
    rows: list[Row]
    labels: list[bool]
    batch: TrainingBatch

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    description: str
    features: tuple[FeatureSpec, ...]
    # (n_samples, seed) -> typed rows and bool labels. Real datasets ignore both and yield
    # their fixed rows (``n_samples`` caps them).
    source: Callable[[int, int], Iterator[tuple[Row, bool]]]
    fixed_size: int | None = None

    def task(self) -> TaskDefinition:
        return make_task(self.name, self.features)

    def size(self, n_samples: int) -> int:
        return min(n_samples, self.fixed_size) if self.fixed_size else n_samples


def make_task(name: str, features: Iterable[FeatureSpec]) -> TaskDefinition:
    return TaskDefinition(
        name=f"bench.{name}",
        objective=Objective.BINARY,
        label=LabelSpec(type=LabelType.BOOL),
        features=tuple(features),
        description="prequential benchmark stream (bench/prequential.py)",
        owner="bench",
    )


def chunk_stream(
    task: TaskDefinition, pairs: Iterable[tuple[Row, bool]], batch_size: int
) -> list[Chunk]:
    """Cut a stream into the micro-batches stream-ingest would flush (size-triggered)."""
    names = task.feature_names
    chunks: list[Chunk] = []
    it = iter(pairs)
    start = 0
    for index in itertools.count():
        part = list(itertools.islice(it, batch_size))
        if not part:
            break
        rows = [row for row, _ in part]
        labels = [label for _, label in part]
        batch = TrainingBatch(
            batch_id=f"{task.name}-b{index}",
            task=task.name,
            event_ids=[f"{task.name}-e{start + i}" for i in range(len(part))],
            columns={n: [row[n] for row in rows] for n in names},
            labels=list(labels),
        )
        chunks.append(Chunk(index=index, start=start, rows=rows, labels=labels, batch=batch))
        start += len(part)
    return chunks


def drift_positions(n_samples: int, n_concepts: int = 4) -> list[int]:
    """Where concept k+1 takes over: evenly spaced, e.g. 1/4, 1/2, 3/4 for four concepts."""
    return [n_samples * k // n_concepts for k in range(1, n_concepts)]


def _drift_width(position: int, gradual: bool, n_samples: int) -> int:
    if gradual:
        return max(1, n_samples // 20)
    # ConceptDriftStream computes exp(4 * (position - t) / width) and overflows a float
    # above ~709, so a literal width of 1 crashes; this is the narrowest safe width
    # (about 1/150 of the position: a switch over a few dozen samples, i.e. abrupt).
    return max(20, math.ceil(4 * position / 700))


def _drifting(
    make: Callable[[int, int], Any], concepts: list[int], n_samples: int, seed: int, gradual: bool
) -> Any:
    """Nest ConceptDriftStreams so concept k hands over to k+1 at its position.

    The outer stream only draws from the inner one before its own drift point, so the inner
    stream's sample counter tracks the global position closely enough for its drift too.
    """
    from river.datasets import synth

    # Different seeds per concept: equal seeds would replay the same x sequence.
    stream = make(concepts[0], seed * 101)
    positions = drift_positions(n_samples, len(concepts))
    for k, (concept, position) in enumerate(zip(concepts[1:], positions, strict=True), 1):
        stream = synth.ConceptDriftStream(
            stream=stream,
            drift_stream=make(concept, seed * 101 + k),
            position=position,
            width=_drift_width(position, gradual, n_samples),
            seed=seed * 101 + 50 + k,
        )
    return stream


# -- the datasets, typed ----------------------------------------------------------------

_PHISHING_FEATURES = (
    *(
        FeatureSpec(name=n, type=FeatureType.FLOAT)
        for n in (
            "empty_server_form_handler",
            "popup_window",
            "https",
            "request_from_other_domain",
            "anchor_from_other_domain",
            "is_popular",
            "long_url",
        )
    ),
    FeatureSpec(name="age_of_domain", type=FeatureType.INT),
    FeatureSpec(name="ip_in_url", type=FeatureType.INT),
)


def _phishing(n_samples: int, seed: int) -> Iterator[tuple[Row, bool]]:
    from river import datasets

    for x, y in itertools.islice(datasets.Phishing(), n_samples):
        row: Row = {
            f.name: (int(x[f.name]) if f.type is FeatureType.INT else float(x[f.name]))
            for f in _PHISHING_FEATURES
        }
        yield row, bool(y)


def _bananas(n_samples: int, seed: int) -> Iterator[tuple[Row, bool]]:
    from river import datasets

    # River names the columns "1" and "2"; feature names must start with a letter.
    for x, y in itertools.islice(datasets.Bananas(), n_samples):  # type: ignore[no-untyped-call]
        yield {"x1": float(x["1"]), "x2": float(x["2"])}, bool(y)


def _sea(gradual: bool) -> Callable[[int, int], Iterator[tuple[Row, bool]]]:
    def source(n_samples: int, seed: int) -> Iterator[tuple[Row, bool]]:
        from river.datasets import synth

        stream = _drifting(
            lambda variant, s: synth.SEA(variant=variant, noise=0.1, seed=s),
            [0, 1, 2, 3],
            n_samples,
            seed,
            gradual,
        )
        for x, y in stream.take(n_samples):
            yield {f"x{k}": float(v) for k, v in x.items()}, bool(y)

    return source


_AGRAWAL_FEATURES = (
    FeatureSpec(name="salary", type=FeatureType.FLOAT),
    FeatureSpec(name="commission", type=FeatureType.FLOAT),
    FeatureSpec(name="age", type=FeatureType.INT),
    # Education level is ordered (the concepts compare it with thresholds): an int.
    FeatureSpec(name="elevel", type=FeatureType.INT),
    # Car make and zip code are labels for things, not quantities: categories.
    FeatureSpec(name="car", type=FeatureType.CATEGORY),
    FeatureSpec(name="zipcode", type=FeatureType.CATEGORY),
    FeatureSpec(name="hvalue", type=FeatureType.FLOAT),
    FeatureSpec(name="hyears", type=FeatureType.INT),
    FeatureSpec(name="loan", type=FeatureType.FLOAT),
)


def agrawal_row(x: dict[str, Any]) -> Row:
    return {
        "salary": float(x["salary"]),
        "commission": float(x["commission"]),
        "age": int(x["age"]),
        "elevel": int(x["elevel"]),
        "car": f"car{int(x['car'])}",
        "zipcode": f"zip{int(x['zipcode'])}",
        "hvalue": float(x["hvalue"]),
        "hyears": int(x["hyears"]),
        "loan": float(x["loan"]),
    }


def _agrawal(gradual: bool) -> Callable[[int, int], Iterator[tuple[Row, bool]]]:
    def source(n_samples: int, seed: int) -> Iterator[tuple[Row, bool]]:
        from river.datasets import synth

        stream = _drifting(
            lambda function, s: synth.Agrawal(classification_function=function, seed=s),
            [0, 1, 2, 3],
            n_samples,
            seed,
            gradual,
        )
        for x, y in stream.take(n_samples):
            yield agrawal_row(x), bool(y)

    return source


_SEA_FEATURES = tuple(FeatureSpec(name=f"x{k}", type=FeatureType.FLOAT) for k in range(3))

STREAMS: dict[str, StreamSpec] = {
    s.name: s
    for s in (
        StreamSpec(
            "phishing",
            "River Phishing (1,250 web pages), fixed order",
            _PHISHING_FEATURES,
            _phishing,
            fixed_size=1_250,
        ),
        StreamSpec(
            "bananas",
            "River Bananas (5,300 2-D points), fixed order",
            tuple(FeatureSpec(name=n, type=FeatureType.FLOAT) for n in ("x1", "x2")),
            _bananas,
            fixed_size=5_300,
        ),
        StreamSpec(
            "sea-abrupt",
            "SEA, 10% noise, variants 0->1->2->3 at 1/4,1/2,3/4, abrupt",
            _SEA_FEATURES,
            _sea(gradual=False),
        ),
        StreamSpec(
            "sea-gradual",
            "SEA, 10% noise, variants 0->1->2->3, gradual (width n/20)",
            _SEA_FEATURES,
            _sea(gradual=True),
        ),
        StreamSpec(
            "agrawal-abrupt",
            "Agrawal functions 0->1->2->3 at 1/4,1/2,3/4, abrupt",
            _AGRAWAL_FEATURES,
            _agrawal(gradual=False),
        ),
        StreamSpec(
            "agrawal-gradual",
            "Agrawal functions 0->1->2->3, gradual (width n/20)",
            _AGRAWAL_FEATURES,
            _agrawal(gradual=True),
        ),
    )
}
