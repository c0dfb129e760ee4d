"""The prequential benchmark's pieces: stream adapters, learners' test-then-train contract,
and the metric. Small and offline (River's bundled datasets ship with the package)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from bench.prequential import (
    main,
    prequential_accuracy,
    run_learner,
    segment_accuracy,
    summarize,
    verdicts,
)
from bench.prequential_learners import (
    ARFBatchLearner,
    ARFLearner,
    ColumnEncoder,
    FlywheelLearner,
    MajorityLearner,
    NaiveAppendLightGBM,
    NoChangeLearner,
    flywheel_available,
)
from bench.prequential_streams import STREAMS, Chunk, chunk_stream, drift_positions, make_task
from flywheel.tasks import FeatureSpec, FeatureType, TaskDefinition


def _chunks(stream: str, n: int, batch: int, seed: int = 1) -> list[Chunk]:
    spec = STREAMS[stream]
    return chunk_stream(spec.task(), spec.source(spec.size(n), seed), batch)


def _toy_task() -> TaskDefinition:
    return make_task(
        "toy",
        [
            FeatureSpec(name="n", type=FeatureType.FLOAT),
            FeatureSpec(name="flag", type=FeatureType.BOOL),
            FeatureSpec(name="kind", type=FeatureType.CATEGORY, nullable=True),
        ],
    )


def _toy_chunks(labels: list[bool], batch: int) -> list[Chunk]:
    rows: list[tuple[dict[str, Any], bool]] = [
        ({"n": float(i), "flag": i % 2 == 0, "kind": f"k{i % 3}"}, y) for i, y in enumerate(labels)
    ]
    return chunk_stream(_toy_task(), rows, batch)


# -- streams ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", list(STREAMS))
def test_every_stream_yields_valid_flywheel_batches(stream: str) -> None:
    spec = STREAMS[stream]
    task = spec.task()
    chunks = _chunks(stream, 600, 250)
    assert [len(c) for c in chunks] == [250, 250, 100]
    assert [c.start for c in chunks] == [0, 250, 500]
    for chunk in chunks:
        assert chunk.batch.task == task.name
        assert list(chunk.batch.columns) == list(task.feature_names)
        assert chunk.batch.labels == chunk.labels
        assert all(type(y) is bool for y in chunk.labels)
        # The columnar batch is the same data as the rows, row for row.
        assert chunk.batch.rows() == chunk.rows
        for row, label in zip(chunk.rows, chunk.labels, strict=True):
            task.check_features(row)  # what ingest would accept
            task.check_label(label)
    event_ids = [e for c in chunks for e in c.batch.event_ids]
    assert len(set(event_ids)) == 600


def test_real_datasets_are_capped_at_their_size() -> None:
    assert STREAMS["phishing"].size(20_000) == 1_250
    assert STREAMS["bananas"].size(1_000) == 1_000
    assert STREAMS["sea-abrupt"].size(20_000) == 20_000


def test_synthetic_streams_depend_on_the_seed_only() -> None:
    first = [c.rows for c in _chunks("agrawal-gradual", 300, 100, seed=3)]
    again = [c.rows for c in _chunks("agrawal-gradual", 300, 100, seed=3)]
    other = [c.rows for c in _chunks("agrawal-gradual", 300, 100, seed=4)]
    assert first == again
    assert first != other


def test_abrupt_drift_over_a_long_stream_does_not_overflow() -> None:
    # ConceptDriftStream's sigmoid overflows math.exp for narrow widths far from the start.
    spec = STREAMS["sea-abrupt"]
    rows = list(spec.source(60_000, 1))
    assert len(rows) == 60_000


def test_sea_concepts_change_at_the_drift_positions() -> None:
    # SEA's concepts differ in their threshold on x0 + x1, so the positive rate shifts.
    n = 8_000
    rows = list(STREAMS["sea-abrupt"].source(n, 2))
    assert drift_positions(n) == [2_000, 4_000, 6_000]
    rates = [np.mean([y for _, y in rows[k * 2_000 : (k + 1) * 2_000]]) for k in range(4)]
    assert max(rates) - min(rates) > 0.05


# -- metric ------------------------------------------------------------------------------


def test_prequential_accuracy_skips_the_warmup() -> None:
    preds = [False, False, True, True, False]
    labels = [True, True, True, False, False]
    assert prequential_accuracy(preds, labels, 0) == (2 / 5, 5)
    assert prequential_accuracy(preds, labels, 2) == (2 / 3, 3)
    acc, n = prequential_accuracy(preds, labels, 5)
    assert math.isnan(acc) and n == 0
    with pytest.raises(ValueError, match="predictions for"):
        prequential_accuracy(preds[:-1], labels, 0)


def test_segment_accuracy_slices_the_stream_and_respects_the_warmup() -> None:
    labels = [True] * 8
    preds = [False, False, True, True, True, False, True, True]
    assert segment_accuracy(preds, labels, 0) == [0.0, 1.0, 0.5, 1.0]
    first, *rest = segment_accuracy(preds, labels, 2)
    assert math.isnan(first)
    assert rest == [1.0, 0.5, 1.0]


# -- learners: the test-then-train contract -------------------------------------------


def test_no_change_predicts_the_previous_label_across_batches() -> None:
    labels = [True, False, False, True, True]
    learner = NoChangeLearner(_toy_task(), 0)
    preds = [p for c in _toy_chunks(labels, 2) for p in learner.test_then_train(c)]
    assert preds == [False, True, False, False, True]


def test_majority_predicts_before_counting_the_label() -> None:
    labels = [True, True, False, False, False]
    learner = MajorityLearner(_toy_task(), 0)
    preds = [p for c in _toy_chunks(labels, 3) for p in learner.test_then_train(c)]
    # Ties (0-0 and 2-2) go to False.
    assert preds == [False, True, True, True, False]


def test_column_encoder_keeps_category_codes_stable_and_hides_unseen_ones() -> None:
    enc = ColumnEncoder(_toy_task())
    assert enc.categorical == [2]
    x = enc.encode({"n": [1, 2.5], "flag": [True, False], "kind": ["a", "b"]}, learn=True)
    assert x.tolist() == [[1.0, 1.0, 0.0], [2.5, 0.0, 1.0]]
    y = enc.encode(
        {"n": [0.0, 0.0, 0.0], "flag": [False] * 3, "kind": ["b", "c", None]}, learn=False
    )
    assert y[0, 2] == 1.0
    assert math.isnan(y[1, 2]) and math.isnan(y[2, 2])
    # Learning a new category appends a code; old codes never move.
    z = enc.encode_rows(
        [{"n": 0.0, "flag": True, "kind": "c"}, {"n": 0.0, "flag": True, "kind": "a"}], learn=True
    )
    assert z[:, 2].tolist() == [2.0, 0.0]


def test_arf_sees_categories_as_numeric_codes() -> None:
    chunks = _chunks("agrawal-abrupt", 300, 100)
    learner = ARFLearner(STREAMS["agrawal-abrupt"].task(), 1)
    numeric = learner._numeric(chunks[0].rows[0])
    assert isinstance(numeric["car"], int) and isinstance(numeric["zipcode"], int)
    assert str(chunks[0].rows[0]["car"]).startswith("car")  # the shared row is left alone
    preds = [p for c in chunks for p in learner.test_then_train(c)]
    assert len(preds) == 300
    assert preds[0] is False  # nothing learned yet


def test_append_only_lightgbm_grows_every_batch_and_cold_starts_false() -> None:
    chunks = _chunks("bananas", 600, 200)
    learner = NaiveAppendLightGBM(STREAMS["bananas"].task(), 1)
    first = learner.test_then_train(chunks[0])
    assert first == [False] * 200
    trees = [learner.stats()["trees"]]
    for chunk in chunks[1:]:
        learner.test_then_train(chunk)
        trees.append(learner.stats()["trees"])
    per_update = STREAMS["bananas"].task().training.trees_per_update
    assert trees == [per_update, 2 * per_update, 3 * per_update]


def test_learners_only_see_labels_after_predicting() -> None:
    # A learner that peeked at this batch's labels would score ~1.0 on a pure-noise stream.
    rng = np.random.default_rng(0)
    labels = [bool(v) for v in rng.integers(0, 2, 1_200)]
    chunks = _toy_chunks(labels, 200)
    for factory in (NaiveAppendLightGBM, ARFBatchLearner, NoChangeLearner, MajorityLearner):
        learner = factory(_toy_task(), 0)
        preds = [p for c in chunks for p in learner.test_then_train(c)]
        acc, _ = prequential_accuracy(preds, labels, 200)
        assert acc < 0.6, factory.name


@pytest.mark.skipif(flywheel_available() is not None, reason="trainer.learner not there yet")
def test_flywheel_adapter_matches_the_learners_own_prequential_accuracy() -> None:
    chunks = _chunks("phishing", 800, 200)
    learner = FlywheelLearner(STREAMS["phishing"].task(), 1)
    preds = [p for c in chunks for p in learner.test_then_train(c)]
    assert len(preds) == 800
    assert preds[:200] == [False] * 200  # no champion during the first batch
    stats = learner.stats()
    assert stats["max_accuracy_gap_vs_own_report"] == 0
    acc, _ = prequential_accuracy(preds, [y for c in chunks for y in c.labels], 200)
    assert acc > 0.8


# -- the run ----------------------------------------------------------------------------


def test_run_summary_and_verdicts() -> None:
    chunks = _chunks("bananas", 400, 100)
    results = [
        run_learner(name, "bananas", seed, chunks, 100)
        for seed in (1, 2, 3)
        for name in ("no-change", "majority")
    ]
    assert all(r.scored == 300 and r.samples == 400 for r in results)
    summary = summarize(results)
    assert [(s["learner"], s["seeds"]) for s in summary] == [
        ("no-change", [1, 2, 3]),
        ("majority", [1, 2, 3]),
    ]
    fake = [
        {**summary[0], "learner": "flywheel", "accuracy_median": 0.9},
        {**summary[0], "learner": "river-arf", "accuracy_median": 0.91},
    ]
    verdict = verdicts(fake)["bananas"]
    assert verdict["met"] is False
    assert verdict["flywheel_minus_arf"] == pytest.approx(-0.01)


def test_main_prints_a_table_and_writes_json(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code = main(
        [
            "--quick",
            "--streams",
            "bananas",
            "--samples",
            "600",
            "--learners",
            "no-change",
            "majority",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    assert "bananas" in capsys.readouterr().out
    import json

    doc = json.loads(out.read_text())
    assert doc["config"]["samples"] == 600
    assert doc["machine"]["cpus"] >= 1
    assert {r["learner"] for r in doc["runs"]} == {"no-change", "majority"}
