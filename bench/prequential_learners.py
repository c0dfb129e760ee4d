"""Learners for the prequential benchmark behind one small interface.

Every learner gets the same micro-batches (:class:`~bench.prequential_streams.Chunk`) and
must *test, then train*: return its predictions for the chunk made before it learns from any
label in that chunk. How it does so is its own business, and that is the point of the
comparison:

- per-sample learners (River ARF, no-change, majority) predict and learn one row at a time,
  so they see the label of row i before predicting row i+1 — the classic prequential
  protocol, and an advantage a micro-batched service does not have;
- batch learners (Flywheel's trainer, the naive append-only LightGBM) score the whole batch
  with the current model and then learn from it, the way the trainer consumes
  ``training.batches``.

Adding a learner is one class with ``name``, ``test_then_train`` and ``stats``.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bench.prequential_streams import Chunk, Row
from flywheel.encoding import FeatureEncoding
from flywheel.tasks import FeatureType, TaskDefinition

__all__ = [
    "DEFAULT_LEARNERS",
    "LEARNERS",
    "ARFBatchLearner",
    "ARFLearner",
    "ColumnEncoder",
    "FlywheelLearner",
    "Learner",
    "MajorityLearner",
    "NaiveAppendLightGBM",
    "NoChangeLearner",
    "flywheel_available",
]


class Learner(Protocol):
    name: str

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        """Predictions for every row of ``chunk``, each made before its label was learned."""
        ...

    def stats(self) -> dict[str, Any]:
        """Model facts worth a column (trees, bytes); empty when there is nothing to say."""
        ...


# -- per-sample baselines ---------------------------------------------------------------


class NoChangeLearner:
    """Predicts the previous label: the floor every drift-stream learner must clear."""

    name = "no-change"

    def __init__(self, task: TaskDefinition, seed: int) -> None:
        self._last = False

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        out: list[bool] = []
        for label in chunk.labels:
            out.append(self._last)
            self._last = label
        return out

    def stats(self) -> dict[str, Any]:
        return {}


class MajorityLearner:
    """Predicts the most frequent label so far (ties -> False)."""

    name = "majority"

    def __init__(self, task: TaskDefinition, seed: int) -> None:
        self._true = 0
        self._false = 0

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        out: list[bool] = []
        for label in chunk.labels:
            out.append(self._true > self._false)
            if label:
                self._true += 1
            else:
                self._false += 1
        return out

    def stats(self) -> dict[str, Any]:
        return {}


class ARFLearner:
    """River's Adaptive Random Forest, default settings (10 trees, ADWIN drift detectors).

    ARF gets its strongest input, as in River's own benchmarks: category values become
    numeric codes (first-seen order). Passed as strings, River's trees make multiway nominal
    splits that info gain over-rewards on many-valued attributes; on Agrawal that cost ARF
    10-15 points of accuracy, and the bar Flywheel must clear should not be lowered that way.
    """

    name = "river-arf"

    def __init__(self, task: TaskDefinition, seed: int) -> None:
        from river import forest

        self._model = forest.ARFClassifier(seed=seed)
        self._categories = {f.name for f in task.features if f.type is FeatureType.CATEGORY}
        self._codes: dict[str, dict[Any, int]] = {name: {} for name in self._categories}

    def _numeric(self, row: Row) -> dict[Hashable, Any]:
        out: dict[Hashable, Any] = dict(row.items())
        if not self._categories:
            return out
        for name in self._categories:
            value = row.get(name)
            if value is not None:
                codes = self._codes[name]
                out[name] = codes.setdefault(value, len(codes))
        return out

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        model = self._model
        out: list[bool] = []
        for row, label in zip(chunk.rows, chunk.labels, strict=True):
            x = self._numeric(row)
            # An untrained forest predicts None; count it as False like any cold start.
            out.append(bool(model.predict_one(x)))
            model.learn_one(x, label)
        return out

    def stats(self) -> dict[str, Any]:
        return {"n_models": len(self._model)}


class ARFBatchLearner(ARFLearner):
    """ARF held to Flywheel's protocol: predict the whole micro-batch, then learn it.

    Not in the default run; it answers "how much of a gap is the protocol (labels arrive a
    batch at a time) rather than the model?".
    """

    name = "river-arf-batch"

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        model = self._model
        xs = [self._numeric(row) for row in chunk.rows]
        out = [bool(model.predict_one(x)) for x in xs]
        for x, label in zip(xs, chunk.labels, strict=True):
            model.learn_one(x, label)
        return out


# -- LightGBM reference: append-only init_model continuation ----------------------------


class ColumnEncoder:
    """Rows/columns -> float matrix for LightGBM, with stable category codes.

    Codes are assigned on first sight and never reused, so a booster trained earlier keeps
    meaning the same thing; a category unseen at training time predicts as missing (NaN).
    """

    def __init__(self, task: TaskDefinition) -> None:
        self.names = task.feature_names
        types = tuple(f.type for f in task.features)
        self.categorical = [i for i, t in enumerate(types) if t is FeatureType.CATEGORY]
        self._codes: dict[str, dict[str, int]] = {
            f.name: {} for f in task.features if f.type is FeatureType.CATEGORY
        }
        # Applying the codes is the trainer's and predictor's code; only learning is here.
        self._encoding = FeatureEncoding([(f.name, f.type) for f in task.features], self._codes)

    def encode(
        self, columns: Mapping[str, Sequence[Any]], *, learn: bool
    ) -> npt.NDArray[np.float64]:
        n = len(columns[self.names[0]]) if self.names else 0
        if learn:
            for name, codes in self._codes.items():
                for v in columns.get(name, ()):
                    if v is not None and v not in codes:
                        codes[v] = len(codes)
        return self._encoding.encode_columns(columns, n)

    def encode_rows(self, rows: Sequence[Row], *, learn: bool) -> npt.NDArray[np.float64]:
        return self.encode({n: [r.get(n) for r in rows] for n in self.names}, learn=learn)


class NaiveAppendLightGBM:
    """The design's cautionary tale: every batch appends ``trees_per_update`` trees with
    ``init_model`` and nothing is ever dropped, so the model grows without bound and old
    concepts keep voting after a drift. Same tree settings as the task's TrainingPolicy."""

    name = "lgbm-append"

    def __init__(self, task: TaskDefinition, seed: int) -> None:
        policy = task.training
        self._encoder = ColumnEncoder(task)
        self._rounds = policy.trees_per_update
        self._params: dict[str, Any] = {
            "objective": "binary",
            "num_leaves": policy.num_leaves,
            "learning_rate": policy.learning_rate,
            "min_data_in_leaf": 20,
            "num_threads": 1,  # two cores shared by the whole team
            "deterministic": True,
            "seed": seed,
            "verbose": -1,
        }
        self._booster: Any = None

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        import lightgbm as lgb

        x = self._encoder.encode(chunk.batch.columns, learn=True)
        y = np.asarray(chunk.labels, dtype=np.float64)
        if self._booster is None:
            preds = [False] * len(chunk)
        else:
            preds = [bool(p > 0.5) for p in self._booster.predict(x)]
        data = lgb.Dataset(
            x,
            label=y,
            categorical_feature=self._encoder.categorical or "auto",
            free_raw_data=False,
            params={"verbose": -1, "min_data_in_bin": 1},
        )
        self._booster = lgb.train(
            self._params,
            data,
            num_boost_round=self._rounds,
            init_model=self._booster,
            keep_training_booster=True,
        )
        return preds

    def stats(self) -> dict[str, Any]:
        if self._booster is None:
            return {"trees": 0, "model_bytes": 0}
        return {
            "trees": int(self._booster.num_trees()),
            "model_bytes": len(self._booster.model_to_string().encode()),
        }


# -- Flywheel's trainer -------------------------------------------------------------------


def flywheel_available() -> str | None:
    """None when ``trainer.learner.TaskLearner`` imports, else why not (for the report)."""
    try:
        module = importlib.import_module("trainer.learner")
    except ImportError as exc:
        return f"trainer.learner not importable: {exc}"
    if not hasattr(module, "TaskLearner"):
        return "trainer.learner has no TaskLearner"
    return None


class FlywheelLearner:
    """Flywheel's trainer learner (``trainer.learner.TaskLearner``), fed ``TrainingBatch``es
    exactly as the service is.

    The benchmark asks the champion for this batch's predictions (``predict_proba``, the
    serving path: calibrated, unseen categories as missing) *before* ``score_then_learn``,
    and scores them with the same code as every other learner. The learner's own
    prequential accuracy (``report.batch_metrics``) is kept as a cross-check: the two must
    agree, or one of the two measurements is wrong.
    """

    name = "flywheel"

    def __init__(self, task: TaskDefinition, seed: int) -> None:
        from trainer.learner import TaskLearner

        self._learner = TaskLearner(task, seed=seed)
        self._strategies: Counter[str] = Counter()
        self._promotions = 0
        self._update_s = 0.0
        self._updates = 0
        self._max_trees = 0
        self._max_gap = 0.0

    def test_then_train(self, chunk: Chunk) -> list[bool]:
        learner = self._learner
        if learner.champion is None:
            # No model yet: a cold start predicts False (only the warm-up batch, normally).
            preds = [False] * len(chunk)
        else:
            proba = np.asarray(learner.predict_proba(chunk.rows), dtype=np.float64)
            preds = [bool(p > 0.5) for p in proba]
        report = learner.score_then_learn(chunk.batch)
        own = report.batch_metrics.get("accuracy")
        if own is not None:
            ours = sum(p == y for p, y in zip(preds, chunk.labels, strict=True)) / len(chunk)
            self._max_gap = max(self._max_gap, abs(own - ours))
        self._strategies[report.strategy] += 1
        self._promotions += report.promotion is not None
        self._update_s += report.update_seconds
        self._updates += 1
        self._max_trees = max(self._max_trees, report.candidate.trees)
        return preds

    def stats(self) -> dict[str, Any]:
        champion = self._learner.champion
        return {
            "trees": 0 if champion is None else champion.record.trees,
            "model_bytes": 0 if champion is None else len(champion.record.model_text),
            "max_candidate_trees": self._max_trees,
            "strategies": dict(self._strategies),
            "promotions": self._promotions,
            "mean_update_s": round(self._update_s / max(self._updates, 1), 4),
            # |learner's own batch accuracy - the benchmark's|, worst batch: should be 0.
            "max_accuracy_gap_vs_own_report": round(self._max_gap, 6),
        }


LearnerFactory = Callable[[TaskDefinition, int], Learner]

# Table order: the system under test, the bar it must clear, the cautionary tale, floors.
LEARNERS: dict[str, LearnerFactory] = {
    FlywheelLearner.name: FlywheelLearner,
    ARFLearner.name: ARFLearner,
    NaiveAppendLightGBM.name: NaiveAppendLightGBM,
    NoChangeLearner.name: NoChangeLearner,
    MajorityLearner.name: MajorityLearner,
    ARFBatchLearner.name: ARFBatchLearner,
}
# Opt-in extras stay out of the default run (the box is shared; keep it to minutes).
DEFAULT_LEARNERS = [name for name in LEARNERS if name != ARFBatchLearner.name]
