"""An ensemble task's learner: every member a real :class:`TaskLearner`, gated as a whole.

Same API as :class:`~trainer.learner.TaskLearner` (the service and the benchmark take
either; :func:`make_learner` / :func:`resume_learner` pick the right one)::

    learner = EnsembleLearner(task)               # task.ensemble is set
    report = learner.score_then_learn(batch)      # report.member_metrics: per member
    learner.predict_proba(rows)                   # the served ensemble, calibrated
    learner.champion.record                       # a ModelVersion, model_format lightgbm-ensemble

How one batch is handled:

1. **Test**: the served ensemble (its member models as they were when it was promoted,
   its combiner and calibration) scores the batch before anything learns it. These are
   the task's prequential numbers. Each member's out-of-sample raw score joins the
   stack window (what ``stacked`` fits its weights on).
2. **Members**: every member learner runs ``score_then_learn`` on the batch with its own
   training policy (the task's, with the member's overrides): its own test (per-member
   numbers), its own candidate and the single-model gate against its own champion. A
   member therefore evolves exactly as a single model with its policy would; each is
   bounded as one (``max_trees``, ``window_events``).
3. **Candidate**: the member champions (a member's newest candidate until it has one),
   with uniform weights (``average``) or weights fitted on the stack window
   (``stacked``, see :mod:`trainer.stacking`), calibrated on the ensemble's own
   prequential scores.
4. **Gate**: the candidate ensemble against the served one on the batch's held-back
   rows, which no model in either has learned, with the single model's test
   (:func:`~trainer.learner.candidate_is_worse`). The first ensemble is promoted once
   ``training.min_events_to_train`` events were learned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from flywheel.calibration import calibrator_from
from flywheel.ensembles import (
    ENSEMBLE_FORMAT,
    combine_raw,
    ensemble_of,
    link,
    member_version,
    pack_members,
)
from flywheel.errors import ModelError
from flywheel.events import EnsembleMemberRecord, EnsembleParameters, ModelVersion, TrainingBatch
from flywheel.tasks import Objective, TaskDefinition
from trainer import boosting
from trainer.boosting import Model
from trainer.calibration import fit_calibration
from trainer.encoding import Matrix, Vector
from trainer.learner import BatchReport, Promotion, TaskLearner, candidate_is_worse
from trainer.prequential import PrequentialWindow, batch_metrics, no_change_predictions, row_losses
from trainer.stacking import StackWindow, fit_stacked, uniform_weights

__all__ = ["EnsembleLearner", "EnsembleModel", "Learner", "make_learner", "resume_learner"]


@dataclass(slots=True)
class EnsembleModel:
    """An ensemble version ready to score: its members' boosters and its combiner."""

    record: ModelVersion
    members: tuple[Model, ...]

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def params(self) -> EnsembleParameters:
        return ensemble_of(self.record)

    @classmethod
    def load(cls, record: ModelVersion) -> EnsembleModel:
        names = [m.name for m in ensemble_of(record).members]
        return cls(record, tuple(boosting.load(member_version(record, n)) for n in names))

    def raw_scores(self, x: Matrix) -> list[Matrix | Vector]:
        return [boosting.predict(m.booster, x, raw_score=True) for m in self.members]

    def combine(self, raw: list[Matrix | Vector]) -> Matrix | Vector:
        """The uncalibrated output: P(true), class probabilities or values."""
        params = self.params
        return link(self.record.objective, combine_raw(raw, params.weights, params.bias))

    def predict(self, x: Matrix) -> Matrix | Vector:
        """The served output for encoded rows (calibrated, like one model's)."""
        return calibrator_from(self.record.calibration)(self.combine(self.raw_scores(x)))


class EnsembleLearner:
    """Learns an ensemble task from its batches; see the module docstring."""

    def __init__(
        self,
        task: TaskDefinition,
        *,
        promotion_tolerance: float = 0.02,
        holdout_fraction: float = 0.2,
        seed: int = 7,
        first_version: int = 1,
    ) -> None:
        if task.ensemble is None:
            raise ValueError(f"ensemble: task {task.name} has no ensemble section")
        self.task = task
        self.spec = task.ensemble
        self.policy = task.training
        self.promotion_tolerance = promotion_tolerance
        self.members: dict[str, TaskLearner] = {
            name: TaskLearner(
                definition,
                promotion_tolerance=promotion_tolerance,
                holdout_fraction=holdout_fraction,
                seed=seed,
            )
            for name, definition in task.member_tasks()
        }
        classifier = self.lead.labels.is_classifier
        self.prequential = PrequentialWindow(self.policy.window_events, classifier=classifier)
        self.stack = StackWindow(len(self.members), self.spec.stack_window_events)
        self.champion: EnsembleModel | None = None
        self.next_version = first_version
        self.events_trained = 0
        self.updates = 0
        self.rejected_in_a_row = 0
        self._last_label: float | None = None

    @property
    def lead(self) -> TaskLearner:
        """The first member: its encoders encode for the ensemble. Every member's encoders
        see the same batches in the same order, so their mappings are equal (checked
        whenever a version is built)."""
        return next(iter(self.members.values()))

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
    ) -> EnsembleLearner:
        """An ensemble learner continuing from the registry.

        Members resume from their part of the champion and latest ensemble versions. A
        task that was a single model starts every member from that model; the first
        ensemble is then promoted as a task's first model is.
        """
        learner = cls(task, promotion_tolerance=promotion_tolerance, first_version=next_version)
        newest = latest or champion
        if newest is None:
            return learner
        learner.events_trained = newest.events_trained
        for name, definition in task.member_tasks():
            learner.members[name] = TaskLearner.resume(
                definition,
                champion=learner._part(champion, name),
                latest=learner._part(latest, name) or learner._part(champion, name),
                next_version=1,
                promotion_tolerance=promotion_tolerance,
            )
        if champion is not None and learner._fits(champion):
            learner.champion = EnsembleModel.load(champion)
        return learner

    def _fits(self, version: ModelVersion) -> bool:
        """Whether ``version`` is an ensemble of exactly this task's members and features."""
        params = version.ensemble
        return (
            params is not None
            and tuple(m.name for m in params.members) == self.spec.member_names
            and tuple(version.feature_schema) == tuple(self.task.features)
        )

    def _part(self, version: ModelVersion | None, name: str) -> ModelVersion | None:
        """Member ``name``'s model in ``version`` (a single-model version: that model)."""
        if version is None:
            return None
        if not version.is_ensemble:
            return version
        if not self._fits(version):
            return None
        return member_version(version, name)

    def replay(self, batch: TrainingBatch) -> None:
        """Put an already-learned batch back in every member's replay window."""
        for member in self.members.values():
            member.replay(batch)
        y = self._known_labels(batch)
        if y is not None:
            self._last_label = float(y[-1])

    def adopt_champion(self, version: ModelVersion) -> None:
        """Serve ``version`` (an operator's promote/rollback); its members become the
        member learners' champions too, so they continue from what is served."""
        if not self._fits(version):
            return
        self.champion = EnsembleModel.load(version)
        for name, member in self.members.items():
            member.adopt_champion(member_version(version, name))
        self.stack.clear()
        self.next_version = max(self.next_version, version.version + 1)

    # ---- the loop ---------------------------------------------------------------------

    def score_then_learn(self, batch: TrainingBatch) -> BatchReport:
        """Score ``batch`` with the served ensemble, let every member learn it, gate the
        new ensemble on the held-back rows."""
        if batch.task != self.task.name:
            raise ValueError(f"task: batch is for {batch.task!r}, learner for {self.task.name!r}")
        started = time.perf_counter()
        n = len(batch)
        # Before any member learns the batch: its new categories are missing to the
        # served models, exactly as they are to a single champion.
        x_seen = self.lead.features.encode_columns(batch.columns, n, learn=False)
        y_before = self._known_labels(batch)
        champion = self.champion
        this_batch: dict[str, float] = {}
        if champion is not None and y_before is not None:
            raw = champion.raw_scores(x_seen)
            combined = champion.combine(raw)
            served = calibrator_from(champion.record.calibration)(combined)
            baseline = no_change_predictions(y_before, self._last_label)
            self.prequential.add(combined, served, y_before, baseline)
            this_batch = batch_metrics(self.lead.labels.is_classifier, served, y_before, baseline)
            self.stack.add(raw, y_before)

        reports = {name: m.score_then_learn(batch) for name, m in self.members.items()}
        y = self._known_labels(batch)
        if y is None:  # every member learned the batch's classes just now
            raise ModelError(f"{self.task.name}: members disagree on the label classes")
        self._last_label = float(y[-1])
        self.events_trained += n
        self.updates += 1
        candidate = self._candidate(reports)
        held = min(report.held_back for report in reports.values())
        promotion = self._gate(candidate, x_seen[n - held :], y[n - held :], grew=y_before is None)
        return BatchReport(
            task=self.task.name,
            rows=n,
            scored_by=None if champion is None else champion.version,
            batch_metrics=this_batch,
            live_metrics=self.prequential.metrics(),
            candidate=candidate.record,
            promotion=promotion,
            strategy=f"ensemble-{self.spec.combine}",
            update_seconds=time.perf_counter() - started,
            champion=None if self.champion is None else self.champion.version,
            held_back=held,
            member_metrics={name: r.batch_metrics for name, r in reports.items()},
        )

    def _known_labels(self, batch: TrainingBatch) -> Vector | None:
        """The batch's targets, or None if a label class is new to the members."""
        try:
            y, _ = self.lead.labels.encode(batch.labels, learn=False)
        except ValueError:
            return None
        return y

    def _gate(
        self, candidate: EnsembleModel, x: Matrix, y: Vector, *, grew: bool
    ) -> Promotion | None:
        champion = self.champion
        if champion is None or grew:
            if champion is None and self.events_trained < self.policy.min_events_to_train:
                return None
            self.champion = candidate
            return Promotion.ungated(
                candidate.record, None if champion is None else champion.version
            )
        if len(y) == 0:
            return None  # nothing held back: keep the served ensemble
        classifier = self.lead.labels.is_classifier
        champion_rows = row_losses(classifier, champion.predict(x), y)
        candidate_rows = row_losses(classifier, candidate.predict(x), y)
        if candidate_is_worse(
            champion_rows,
            candidate_rows,
            tolerance=self.promotion_tolerance,
            floor=self.lead.loss_floor(),
        ):
            self.rejected_in_a_row += 1
            return None
        self.rejected_in_a_row = 0
        self.champion = candidate
        champion_loss, candidate_loss = float(champion_rows.mean()), float(candidate_rows.mean())
        return Promotion(
            candidate.version,
            champion.version,
            f"ensemble not worse on {len(y)} held-back events: "
            f"loss {candidate_loss:.4f} vs champion {champion_loss:.4f}",
            {"challenger_loss": candidate_loss, "champion_loss": champion_loss},
        )

    # ---- building a version -----------------------------------------------------------

    def _candidate(self, reports: dict[str, BatchReport]) -> EnsembleModel:
        models = tuple(
            member.champion
            if member.champion is not None
            else boosting.load(reports[name].candidate)
            for name, member in self.members.items()
        )
        if self.spec.combine == "stacked" and len(self.stack):
            weights, bias = fit_stacked(self.task.objective, self.stack.raw, self.stack.labels)
        else:
            weights, bias = uniform_weights(len(models)), 0.0
        return EnsembleModel(self._record(models, weights, bias), models)

    def _record(
        self, models: tuple[Model, ...], weights: tuple[float, ...], bias: float
    ) -> ModelVersion:
        lead = self.lead
        mappings = lead.features.mappings()
        for name, member in self.members.items():
            if member.features.mappings() != mappings:
                raise ModelError(f"{self.task.name}: member {name} encodes categories differently")
        text = pack_members(
            [(name, m.record.model_text) for name, m in zip(self.members, models, strict=True)]
        )
        calibration: dict[str, Any] = {}
        if lead.labels.is_classifier and self.prequential.raw is not None:
            calibration = fit_calibration(
                self.policy.calibration, self.prequential.raw, self.prequential.labels
            )
        metrics = {k: v for k, v in self.prequential.metrics().items() if math.isfinite(v)}
        metrics["model_bytes"] = float(len(text))
        params = EnsembleParameters(
            combine=self.spec.combine,
            weights=weights,
            bias=bias,
            members=tuple(
                EnsembleMemberRecord(
                    name=name,
                    model_sha256=model.record.model_sha256,
                    strategy=model.record.strategy,
                    trees=model.record.trees,
                    events_trained=model.record.events_trained,
                    window_events=len(member.window),
                    calibration=model.record.calibration,
                    metrics=model.record.metrics,
                )
                for (name, member), model in zip(self.members.items(), models, strict=True)
            ),
        )
        version = self.next_version
        self.next_version += 1
        champion = self.champion
        return ModelVersion(
            task=self.task.name,
            version=version,
            parent_version=None if champion is None else champion.version,
            objective=self.task.objective,
            model_format=ENSEMBLE_FORMAT,
            model_text=text,
            model_sha256=ModelVersion.hash_text(text),
            feature_schema=self.task.features,
            category_mappings=mappings,
            label_classes=list(lead.labels.classes)
            if self.task.objective is Objective.MULTICLASS
            else [],
            calibration=calibration,
            strategy=f"ensemble-{self.spec.combine}",
            trees=sum(m.record.trees for m in models),
            events_trained=self.events_trained,
            metrics=metrics,
            ensemble=params,
        )

    # ---- serving ----------------------------------------------------------------

    def predict_proba(self, rows: list[dict[str, Any]]) -> Matrix | Vector:
        """The served ensemble's calibrated output for raw feature rows."""
        if self.champion is None:
            raise ModelError(f"task {self.task.name} has no champion yet")
        x = self.lead.features.encode_rows(rows, learn=False)
        out: Matrix | Vector = np.asarray(self.champion.predict(x), dtype=np.float64)
        return out


Learner = TaskLearner | EnsembleLearner


def make_learner(task: TaskDefinition, **options: Any) -> Learner:
    """The learner ``task`` needs: an :class:`EnsembleLearner` if it has an ensemble."""
    if task.ensemble is not None:
        return EnsembleLearner(task, **options)
    return TaskLearner(task, **options)


def resume_learner(
    task: TaskDefinition,
    *,
    champion: ModelVersion | None,
    latest: ModelVersion | None,
    next_version: int,
    promotion_tolerance: float = 0.02,
) -> Learner:
    """:meth:`TaskLearner.resume` or :meth:`EnsembleLearner.resume`, as ``task`` needs."""
    kind = EnsembleLearner if task.ensemble is not None else TaskLearner
    return kind.resume(
        task,
        champion=champion,
        latest=latest,
        next_version=next_version,
        promotion_tolerance=promotion_tolerance,
    )
