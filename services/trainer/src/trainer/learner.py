"""One task's learner: bounded, incrementally updated LightGBM with test-then-train.

Public API (stable; the learning-quality benchmark and the service use only this)::

    learner = TaskLearner(task)                  # task: flywheel.tasks.TaskDefinition
    report = learner.score_then_learn(batch)     # batch: flywheel.events.TrainingBatch
    report.batch_metrics    # the champion's scores on this batch, BEFORE it learned it
    report.live_metrics     # the same over the recent prequential window (+ baseline, ECE)
    report.candidate        # the ModelVersion trained on this batch (always one)
    report.promotion        # a Promotion if a version became champion, else None
    learner.predict_proba(rows)   # champion, calibrated: (n,) P(true) | (n, k) | (n,) values
    TaskLearner.resume(task, champion=..., latest=..., next_version=...)  # from the registry
    learner.adopt_champion(version)   # an operator promoted/rolled back in the registry
    learner.replay(batch)             # refill the replay window with a learned batch

How one batch is handled (``score_then_learn``):

1. **Test**: the champion scores the batch (unseen categories -> missing). These are the
   prequential numbers: accuracy, AUC, log loss (or RMSE, MAE), ECE, and the no-change
   baseline (each event's label predicted as the previous event's label).
2. **Train**: the batch joins the replay window (the last ``policy.window_events``
   events) and a new candidate is trained on the window *except its newest
   ``holdout_fraction`` of the batch* (held back; the next update learns them),
   bounded by ``policy.max_trees``, its trees sized to the rows it learns from
   (``boosting.params_for``: ~100 rows per leaf, 10 to ``policy.num_leaves`` leaves):

   * ``window`` - a fresh model on the window (``max_trees // 2`` rounds);
   * ``append`` - ``trees_per_update`` more rounds on the window from the champion
     (``init_model``), only while the total stays within ``max_trees``;
   * ``refit``  - the champion's trees, leaf values refitted to the window;
   * ``auto``   - ``window`` when there is no model, when the classes grew or when the
     champion's latest batch loss jumped (drift, which also cuts the window to the
     newest events); otherwise the strategy whose candidates beat the champion by the
     most at the gate (an EWMA of relative loss gains), every feasible strategy being
     re-tried now and then.
3. **Gate**: champion and candidate are scored on the held-back rows, which neither has
   learned. The candidate becomes champion only if its loss (log loss / RMSE) is not
   worse than the champion's by more than ``promotion_tolerance``. The very first
   version is promoted once ``policy.min_events_to_train`` events were learned.

``events_trained`` counts events that entered the training window, held-back ones
included (they are in the window, the next version learns them, and after a restart
``replay`` puts them back).

Calibration (isotonic, Platt, or a temperature for multiclass) is fitted on the recent
window of the champion's out-of-sample scores and stored as JSON in the version.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import lightgbm as lgb
import numpy as np

from flywheel.calibration import calibrator_from
from flywheel.errors import ModelError
from flywheel.events import ModelVersion, TrainingBatch
from flywheel.tasks import Objective, TaskDefinition
from trainer import boosting
from trainer.boosting import Model
from trainer.calibration import fit_calibration
from trainer.encoding import FeatureEncoder, LabelEncoder, Matrix, Vector
from trainer.prequential import (
    PrequentialWindow,
    batch_metrics,
    gate_loss,
    no_change_predictions,
    row_losses,
)

__all__ = ["STRATEGIES", "BatchReport", "Promotion", "TaskLearner", "candidate_is_worse"]

STRATEGIES = ("window", "append", "refit")
# Re-try every feasible strategy at least this often so "auto" notices when another wins.
_EXPLORE_EVERY = 8
_GAIN_EWMA = 0.3
# The champion's batch loss must exceed its mean over the last _DRIFT_HISTORY batches by
# this factor (and by 3 sigma) to count as drift. A short history (it was 6) gives a
# noisy sigma: on a stable stream a loss spike cut the window to 400 events.
_DRIFT_RATIO = 1.3
_DRIFT_HISTORY = 20
# One-sided 95%: how sure the gate must be that a candidate is worse to refuse it.
_WORSE_Z = 1.645
# Losses are compared relative to at least this (log loss in nats; for regression,
# this fraction of the label variance).
_LOSS_FLOOR = 0.05


@dataclass(frozen=True, slots=True)
class Promotion:
    """A version became champion (``previous`` None: the task's first champion)."""

    version: int
    previous: int | None
    reason: str
    metrics: dict[str, float]

    @classmethod
    def ungated(cls, candidate: ModelVersion, previous: int | None) -> Promotion:
        """A promotion without the gate: the task's first model (``previous`` None), or
        a new label class, which the champion cannot name."""
        reason = "first model of the task" if previous is None else "new label class"
        return cls(candidate.version, previous, reason, dict(candidate.metrics))


@dataclass(frozen=True, slots=True)
class BatchReport:
    task: str
    rows: int
    scored_by: int | None
    batch_metrics: dict[str, float]
    live_metrics: dict[str, float]
    candidate: ModelVersion
    promotion: Promotion | None
    strategy: str
    update_seconds: float
    champion: int | None
    # Rows of this batch the candidate did not learn (the gate's test set).
    held_back: int = 0
    # Ensembles: each member's prequential numbers on this batch (its own champion's).
    member_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def candidate_is_worse(
    champion_rows: Vector, candidate_rows: Vector, *, tolerance: float, floor: float
) -> bool:
    """The gate's verdict from per-row losses on the held-back events (paired, one-sided).

    Refuses the candidate only when its extra loss exceeds ``tolerance`` (relative to the
    champion's loss, at least ``floor``) by more than the noise of a small hold-out.
    """
    if not math.isfinite(float(candidate_rows.mean())):
        return True
    champion_loss = float(champion_rows.mean())
    diff = candidate_rows - champion_rows
    noise = _WORSE_Z * float(diff.std()) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
    allowed = tolerance * max(abs(champion_loss), floor)
    return float(diff.mean()) - noise > allowed


@dataclass(slots=True)
class _Window:
    """The replay window: the last ``capacity`` encoded events, oldest first."""

    capacity: int
    x: Matrix | None = None
    y: Vector = field(default_factory=lambda: np.empty(0))

    def add(self, x: Matrix, y: Vector) -> None:
        self.x = x[-self.capacity :] if self.x is None else np.vstack([self.x, x])[-self.capacity :]
        self.y = np.concatenate([self.y, y])[-self.capacity :]

    def keep_last(self, rows: int) -> None:
        if self.x is not None:
            self.x, self.y = self.x[-rows:], self.y[-rows:]

    def __len__(self) -> int:
        return len(self.y)


class TaskLearner:
    """Learns one task from its batches; see the module docstring for the algorithm."""

    def __init__(
        self,
        task: TaskDefinition,
        *,
        promotion_tolerance: float = 0.02,
        holdout_fraction: float = 0.2,
        seed: int = 7,
        first_version: int = 1,
    ) -> None:
        self.task = task
        self.policy = task.training
        self.promotion_tolerance = promotion_tolerance
        self.holdout_fraction = holdout_fraction
        self.seed = seed
        self.features = FeatureEncoder(task.features)
        self.labels = LabelEncoder(task)
        self.window = _Window(self.policy.window_events)
        self.prequential = PrequentialWindow(
            self.policy.window_events, classifier=self.labels.is_classifier
        )
        self.champion: Model | None = None
        self.next_version = first_version
        self.events_trained = 0
        self.updates = 0
        # Challengers that lost the gate since the last promotion (alerting reads it).
        self.rejected_in_a_row = 0
        self._last_label: float | None = None
        self._champion_losses: deque[float] = deque(maxlen=_DRIFT_HISTORY)
        self._gains: dict[str, float] = {}
        self._last_tried: dict[str, int] = {}

    # ---- resuming from the registry -------------------------------------------------

    @classmethod
    def resume(
        cls,
        task: TaskDefinition,
        *,
        champion: ModelVersion | None,
        latest: ModelVersion | None,
        next_version: int,
        promotion_tolerance: float = 0.02,
    ) -> TaskLearner:
        """A learner continuing from the registry: its champion and its latest version.

        The replay window is not in the registry; it refills from new batches (until
        then window retrains see fewer events and the gate guards the champion).
        """
        learner = cls(task, promotion_tolerance=promotion_tolerance, first_version=next_version)
        newest = latest or champion
        if newest is None:
            return learner
        learner.events_trained = newest.events_trained
        if tuple(newest.feature_schema) != tuple(task.features):
            # The task's features changed: old models cannot read new batches.
            return learner
        learner.features = FeatureEncoder(task.features, newest.category_mappings)
        if task.objective is Objective.MULTICLASS:
            learner.labels = LabelEncoder(task, list(newest.label_classes))
        if (
            champion is not None
            and not champion.is_ensemble  # the task was an ensemble: start a single model
            and tuple(champion.feature_schema) == tuple(task.features)
        ):
            learner.champion = boosting.load(champion)
        return learner

    def replay(self, batch: TrainingBatch) -> None:
        """Put an already-learned batch back in the replay window (after a restart).

        Nothing is scored, trained or counted. A batch with a label class the models do
        not know is skipped: it belongs to a newer version's window.
        """
        try:
            y, _ = self.labels.encode(batch.labels, learn=False)
        except ValueError:
            return
        x = self.features.encode_columns(batch.columns, len(batch), learn=True)
        self.window.add(x, y)
        self._last_label = float(y[-1])

    def adopt_champion(self, version: ModelVersion) -> None:
        """Make ``version`` the champion (an operator's promote/rollback in the registry).

        An ensemble version (from before the task became a single model) cannot be.
        """
        if version.is_ensemble:
            return
        self.champion = boosting.load(version)
        self._champion_losses.clear()
        self.next_version = max(self.next_version, version.version + 1)

    # ---- the loop ---------------------------------------------------------------------

    def score_then_learn(self, batch: TrainingBatch) -> BatchReport:
        """Score ``batch`` with the champion, learn it, gate the new version on held-back rows."""
        if batch.task != self.task.name:
            raise ValueError(f"task: batch is for {batch.task!r}, learner for {self.task.name!r}")
        started = time.perf_counter()
        n = len(batch)
        known = {name: len(cats) for name, cats in self.features.mappings().items()}
        x = self.features.encode_columns(batch.columns, n, learn=True)
        y, grew = self.labels.encode(batch.labels, learn=True)
        x_seen = self._hide_new_categories(x, known)
        baseline = no_change_predictions(y, self._last_label)
        self._last_label = float(y[-1])

        scored_by, this_batch, drift = self._test(x_seen, y, baseline, grew)
        if drift:
            # The concept moved: older events now teach the wrong thing, keep the recent.
            self.window.keep_last(min(n, self.policy.window_events // 5))
        self.window.add(x, y)
        self.events_trained += n
        held = self._held_back(n) if self.champion is not None and not grew else 0
        strategy = self._choose_strategy(grew=grew, drift=drift)
        candidate = self._train(strategy, held_back=held)
        self.updates += 1
        promotion = self._gate(candidate, x_seen[n - held :], y[n - held :], grew=grew)
        return BatchReport(
            task=self.task.name,
            rows=n,
            scored_by=scored_by,
            batch_metrics=this_batch,
            live_metrics=self.prequential.metrics(),
            candidate=candidate.record,
            promotion=promotion,
            strategy=strategy,
            update_seconds=time.perf_counter() - started,
            champion=None if self.champion is None else self.champion.version,
            held_back=held,
        )

    def _held_back(self, rows: int) -> int:
        held = max(1, round(self.holdout_fraction * rows))
        # The candidate needs something to learn from besides what it is tested on.
        return held if len(self.window) - held >= 2 else 0

    def _test(
        self, x: Matrix, y: Vector, baseline: Vector, grew: bool
    ) -> tuple[int | None, dict[str, float], bool]:
        """The champion's prequential scores on the batch, and whether they show drift."""
        champion = self.champion
        if champion is None or grew:
            # A model that cannot name a new class has no meaningful score on it.
            return (None if champion is None else champion.version), {}, grew
        classifier = self.labels.is_classifier
        raw = boosting.predict(champion.booster, x)
        served = calibrator_from(champion.record.calibration)(raw)
        self.prequential.add(raw, served, y, baseline)
        loss = gate_loss(classifier, served, y)
        drift = self._drift(loss)
        self._champion_losses.append(loss)
        return champion.version, batch_metrics(classifier, served, y, baseline), drift

    def _gate(self, candidate: Model, x: Matrix, y: Vector, *, grew: bool) -> Promotion | None:
        """Promote ``candidate`` if it is not worse than the champion on held-back ``x``."""
        champion = self.champion
        if champion is None or grew:
            if champion is None and self.events_trained < self.policy.min_events_to_train:
                return None
            self.champion = candidate
            return Promotion.ungated(
                candidate.record, None if champion is None else champion.version
            )
        if len(y) == 0:
            return None  # nothing held back (a one-event window): keep the champion
        classifier = self.labels.is_classifier

        def losses(model: Model) -> Vector:
            served = calibrator_from(model.record.calibration)(boosting.predict(model.booster, x))
            return row_losses(classifier, served, y)

        champion_rows, candidate_rows = losses(champion), losses(candidate)
        champion_loss, candidate_loss = float(champion_rows.mean()), float(candidate_rows.mean())
        gain = (champion_loss - candidate_loss) / max(abs(champion_loss), 1e-9)
        strategy = candidate.record.strategy
        previous_gain = self._gains.get(strategy)
        self._gains[strategy] = (
            gain if previous_gain is None else (1 - _GAIN_EWMA) * previous_gain + _GAIN_EWMA * gain
        )
        if candidate_is_worse(
            champion_rows,
            candidate_rows,
            tolerance=self.promotion_tolerance,
            floor=self.loss_floor(),
        ):
            self.rejected_in_a_row += 1
            return None
        self.rejected_in_a_row = 0
        self.champion = candidate
        return Promotion(
            candidate.version,
            champion.version,
            f"not worse on {len(y)} held-back events: "
            f"loss {candidate_loss:.4f} vs champion {champion_loss:.4f}",
            {"challenger_loss": candidate_loss, "champion_loss": champion_loss},
        )

    def loss_floor(self) -> float:
        """The smallest loss the gate compares against: a loss near 0 (a task learned
        perfectly) must not make float noise "worse"."""
        if self.labels.is_classifier:
            return _LOSS_FLOOR
        return _LOSS_FLOOR * float(np.var(self.window.y))

    def _drift(self, loss: float) -> bool:
        if len(self._champion_losses) < 3 or not math.isfinite(loss):
            return False
        history = np.asarray(self._champion_losses)
        mean, spread = float(history.mean()), float(history.std())
        return loss > _DRIFT_RATIO * mean and loss > mean + 3 * spread

    def _choose_strategy(self, *, grew: bool, drift: bool) -> str:
        wanted = self.policy.strategy
        base = self.champion
        if base is None or grew:
            return "window"
        fits = base.iterations + self.policy.trees_per_update <= self.policy.max_trees
        if wanted == "append":
            return "append" if fits else "window"
        if wanted != "auto":
            return wanted
        if drift:
            return "window"
        feasible = [s for s in STRATEGIES if s != "append" or fits]
        stale = min(feasible, key=lambda s: self._last_tried.get(s, -1))
        # A strategy may have a gain but no try in this process (explore it then).
        last = self._last_tried.get(stale, -_EXPLORE_EVERY)
        if stale not in self._gains or self.updates - last >= _EXPLORE_EVERY:
            return stale
        return max(feasible, key=lambda s: self._gains.get(s, -math.inf))

    # ---- training -----------------------------------------------------------------

    def _train(self, strategy: str, *, held_back: int = 0) -> Model:
        x, y = self.window.x, self.window.y
        assert x is not None  # the batch was just added
        if held_back:
            # The newest rows are the gate's test set; the next update learns them.
            x, y = x[:-held_back], y[:-held_back]
        base = self.champion
        self._last_tried[strategy] = self.updates
        params = boosting.params_for(
            self.task.objective,
            self.policy,
            num_classes=self.labels.num_classes,
            seed=self.seed,
            rows=len(y),
        )
        fit = partial(
            boosting.fit,
            params,
            x,
            y,
            feature_names=self.features.names,
            categorical=self.features.categorical_indices,
        )
        if strategy == "refit" and base is not None:
            booster = boosting.refit(base.booster, x, y)
        elif strategy == "append" and base is not None:
            booster = fit(rounds=self.policy.trees_per_update, init_model=base.booster)
        else:
            strategy = "window"
            booster = fit(rounds=self._window_rounds())
        # LightGBM stops early when no split is left, so count what it actually built.
        return Model(booster, self._record(booster, strategy, base), booster.current_iteration())

    def _window_rounds(self) -> int:
        if self.policy.strategy == "append":
            # Pure continuation: every update, the first included, adds the same trees.
            return self.policy.trees_per_update
        # Half the budget, so appends have room before the next retrain or refit.
        return max(self.policy.trees_per_update, self.policy.max_trees // 2)

    def _record(self, booster: lgb.Booster, strategy: str, base: Model | None) -> ModelVersion:
        text = booster.model_to_string()
        calibration: dict[str, Any] = {}
        if self.labels.is_classifier and self.prequential.raw is not None:
            method = self.policy.calibration
            calibration = fit_calibration(method, self.prequential.raw, self.prequential.labels)
        metrics = {k: v for k, v in self.prequential.metrics().items() if math.isfinite(v)}
        metrics["window_events"] = float(len(self.window))
        metrics["model_bytes"] = float(len(text))
        version = self.next_version
        self.next_version += 1
        return ModelVersion(
            task=self.task.name,
            version=version,
            parent_version=None if base is None else base.version,
            objective=self.task.objective,
            model_text=text,
            model_sha256=ModelVersion.hash_text(text),
            feature_schema=self.task.features,
            category_mappings=self.features.mappings(),
            label_classes=list(self.labels.classes)
            if self.task.objective is Objective.MULTICLASS
            else [],
            calibration=calibration,
            strategy=strategy,
            trees=booster.num_trees(),
            events_trained=self.events_trained,
            metrics=metrics,
        )

    def _hide_new_categories(self, x: Matrix, known: dict[str, int]) -> Matrix:
        # Categories first seen in this batch are unknown to the models scoring it.
        hidden = x
        for j, spec in enumerate(self.features.schema):
            if spec.name in known:
                column = x[:, j]
                new = column >= known[spec.name]
                if new.any():
                    if hidden is x:
                        hidden = x.copy()
                    hidden[new, j] = math.nan
        return hidden

    # ---- serving ----------------------------------------------------------------

    def predict_proba(self, rows: list[dict[str, Any]]) -> Matrix | Vector:
        """The champion's calibrated output for raw feature rows (values for regression)."""
        if self.champion is None:
            raise ModelError(f"task {self.task.name} has no champion yet")
        x = self.features.encode_rows(rows, learn=False)
        raw = boosting.predict(self.champion.booster, x)
        return calibrator_from(self.champion.record.calibration)(raw)
