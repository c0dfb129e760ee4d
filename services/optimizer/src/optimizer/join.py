"""Joining delayed labels to the predictions they judge, by ``prediction_id``.

A label usually arrives seconds to hours after its prediction, but on a partitioned
log it can also arrive first, so both sides wait for each other. Both waiting rooms
are bounded twice: by age (``ttl_s``) and by count (``max_waiting``, oldest evicted
first), so a flood of unlabelled predictions can never exhaust memory. What falls out
is counted, never silently ignored.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

from flywheel.events import FeedbackEvent, PredictionLog
from flywheel.tasks import Objective

__all__ = ["JoinedLabel", "LabelJoin", "Outcome", "infer_objective", "score_outcome"]

_T = TypeVar("_T", PredictionLog, FeedbackEvent)


@dataclass(frozen=True, slots=True)
class JoinedLabel:
    """A prediction and the label that later judged it."""

    prediction: PredictionLog
    label: FeedbackEvent


@dataclass(frozen=True, slots=True)
class Outcome:
    """How wrong one prediction was: ``error`` is 0/1 for classes, |error| for numbers."""

    error: float
    correct: bool | None


def _positive(label: object) -> bool:
    if isinstance(label, str):
        return label.strip().lower() in {"1", "true", "yes"}
    return bool(label)


def _class_index(label: object, classes: tuple[str, ...] | list[str]) -> int | None:
    if isinstance(label, bool):
        return int(label)
    if isinstance(label, int):
        return label
    if isinstance(label, str) and label in classes:
        return list(classes).index(label)
    return None


def score_outcome(
    objective: Objective,
    score: float | list[float],
    label: object,
    classes: tuple[str, ...] | list[str] = (),
) -> Outcome | None:
    """Judge one prediction; None when the label cannot be compared with the score."""
    if objective is Objective.BINARY:
        # A list score is per-class probabilities; the positive class is the last one.
        p = score[-1] if isinstance(score, list) else score
        correct = (p >= 0.5) == _positive(label)
        return Outcome(0.0 if correct else 1.0, correct)
    if objective is Objective.MULTICLASS:
        actual = _class_index(label, classes)
        if actual is None:
            return None
        if isinstance(score, list):
            predicted = max(range(len(score)), key=score.__getitem__) if score else -1
        else:
            predicted = round(score)
        correct = predicted == actual
        return Outcome(0.0 if correct else 1.0, correct)
    if isinstance(label, bool | int | float) and not isinstance(score, list):
        error = abs(float(score) - float(label))
        return Outcome(error, None) if math.isfinite(error) else None
    return None


def infer_objective(score: float | list[float], label: object) -> Objective:
    """A best guess when the task catalog does not know the task (yet)."""
    if isinstance(score, list):
        return Objective.MULTICLASS
    if isinstance(label, bool):
        return Objective.BINARY
    return Objective.REGRESSION


class LabelJoin:
    """Bounded, TTL-limited waiting rooms for predictions and for early labels."""

    def __init__(self, *, ttl_s: float = 3600.0, max_waiting: int = 200_000) -> None:
        if ttl_s <= 0 or max_waiting < 1:
            raise ValueError("ttl_s and max_waiting must be positive")
        self.ttl_s = ttl_s
        self.max_waiting = max_waiting
        self._predictions: OrderedDict[str, tuple[float, PredictionLog]] = OrderedDict()
        self._labels: OrderedDict[str, tuple[float, FeedbackEvent]] = OrderedDict()
        self.joined = 0
        self.expired_predictions = 0
        self.expired_labels = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._predictions) + len(self._labels)

    def add_prediction(self, prediction: PredictionLog, now: float) -> JoinedLabel | None:
        waiting = self._labels.pop(prediction.prediction_id, None)
        if waiting is not None:
            self.joined += 1
            return JoinedLabel(prediction, waiting[1])
        self._park(self._predictions, prediction.prediction_id, (now, prediction))
        return None

    def add_label(self, event: FeedbackEvent, now: float) -> JoinedLabel | None:
        """Join ``event`` (which must carry a ``prediction_id``) or park it."""
        if event.prediction_id is None:
            raise ValueError("only feedback with a prediction_id can be joined")
        waiting = self._predictions.pop(event.prediction_id, None)
        if waiting is not None:
            self.joined += 1
            return JoinedLabel(waiting[1], event)
        self._park(self._labels, event.prediction_id, (now, event))
        return None

    def _park(
        self, room: OrderedDict[str, tuple[float, _T]], key: str, item: tuple[float, _T]
    ) -> None:
        # A repeated id (a retried send) keeps its first arrival time: that is its age.
        if key in room:
            return
        room[key] = item
        while len(room) > self.max_waiting:
            room.popitem(last=False)
            self.evicted += 1

    def expire(self, now: float) -> None:
        """Drop what waited longer than ``ttl_s``: it will not be joined."""
        cutoff = now - self.ttl_s
        self.expired_predictions += _expire(self._predictions, cutoff)
        self.expired_labels += _expire(self._labels, cutoff)


def _expire(room: OrderedDict[str, tuple[float, _T]], cutoff: float) -> int:
    dropped = 0
    # Rooms are in arrival order, so the first young item ends the sweep.
    while room:
        key, (arrived, _) = next(iter(room.items()))
        if arrived >= cutoff:
            break
        del room[key]
        dropped += 1
    return dropped
