"""The three simulated client services: their tasks, their traffic, their ground truth.

Each :class:`Scenario` is one product service of the platform's first users (Daisy
Chain, Oracle, AI GM) with one task. Its rows come from a seeded generator; its labels
come from a ground-truth *concept*, a plain function of the row, plus a little label
noise. Midway through the demo the concept changes (:meth:`Scenario.label` with
``drifted=True``): the world moved, the model trained on the old one is now wrong
about a large share of the rows, and the loop has to notice and re-learn.

Pure code: no I/O, so the unit tests pin the schemas and how much each drift changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flywheel.tasks import (
    FeatureSpec,
    FeatureType,
    FlushPolicy,
    LabelSpec,
    LabelType,
    Objective,
    TaskDefinition,
    TrainingPolicy,
)

__all__ = ["SCENARIOS", "Scenario", "task_name"]

Row = dict[str, Any]
Concept = Callable[[Row], bool | str]

# A flush every 8 s is one model update (usually a new champion) per task. The
# optimizer's drift detector starts afresh with every new champion, so the drift can
# only be caught inside the champion's stretch it falls in: that stretch must be long
# enough to hold the labels before the change, the few dozen after it that the
# detector needs, and the second or so the alert takes to reach the alerter.
FLUSH = FlushPolicy(max_events=5_000, max_age_s=8.0)
# A short window: after the drift the old concept ages out within a few batches.
TRAINING = TrainingPolicy(window_events=1_500, min_events_to_train=100, calibration="none")
LABEL_NOISE = 0.03
# A share of requests repeats a popular row (a user retrying, a hot document), which
# is what the predictor's cache is for.
HOT_ROW_SHARE = 0.3
HOT_ROWS = 25


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated client service and its task."""

    service: str  # e.g. "daisy-chain"
    task: str  # e.g. "task-success"
    title: str
    objective: Objective
    label_spec: LabelSpec
    features: tuple[FeatureSpec, ...]
    draw: Callable[[random.Random], Row]
    before: Concept
    after: Concept
    drift_story: str

    def definition(self, name: str) -> TaskDefinition:
        return TaskDefinition(
            name=name,
            objective=self.objective,
            label=self.label_spec,
            features=self.features,
            flush=FLUSH,
            training=TRAINING,
            description=f"flywheel-demo: {self.title}",
            owner="flywheel-demo",
        )

    def label(self, row: Row, *, drifted: bool, rng: random.Random) -> bool | str:
        """The outcome the client observes for ``row``: the concept, plus label noise."""
        truth = (self.after if drifted else self.before)(row)
        if rng.random() >= LABEL_NOISE:
            return truth
        if isinstance(truth, bool):
            return not truth
        others = [c for c in self.label_spec.classes if c != truth]
        return rng.choice(others)

    def rows(self, rng: random.Random) -> Callable[[], Row]:
        """A row source: mostly fresh rows, some repeats of a fixed set of popular ones."""
        hot = [self.draw(rng) for _ in range(HOT_ROWS)]

        def next_row() -> Row:
            if rng.random() < HOT_ROW_SHARE:
                return dict(rng.choice(hot))
            return self.draw(rng)

        return next_row


def task_name(scenario: Scenario) -> str:
    """``demo.<service>.<task>``: never the name of a real task.

    Each run also has its own topic and Redis namespace, so runs never see each other.
    """
    return f"demo.{scenario.service}.{scenario.task}"


# -- Daisy Chain: does an agent workflow succeed? -----------------------------------------

AGENTS = ("planner", "coder", "reviewer", "tester")
_EFFORT_BUDGET = {"planner": 34, "coder": 26, "reviewer": 38, "tester": 22}


def _daisy_draw(rng: random.Random) -> Row:
    return {
        "steps": rng.randint(1, 40),
        "retries": rng.randint(0, 8) / 2,
        "agent": rng.choice(AGENTS),
    }


def _daisy_effort(row: Row) -> float:
    return float(row["steps"]) + 6.0 * float(row["retries"])


def _daisy_before(row: Row) -> bool:
    return _daisy_effort(row) <= _EFFORT_BUDGET[row["agent"]]


def _daisy_after(row: Row) -> bool:
    # A new model release behind the coder and tester agents: they now finish long
    # workflows and stall on short ones, where they used to do the opposite.
    if row["agent"] in ("coder", "tester"):
        return _daisy_effort(row) > 18
    return _daisy_before(row)


# -- Oracle: how good is an answer's supporting knowledge? --------------------------------

DOMAINS = ("code", "docs", "chat", "search")
QUALITY = ("poor", "fair", "good")


def _oracle_draw(rng: random.Random) -> Row:
    return {
        "sources": rng.randint(0, 8),
        "retrieval_score": rng.randint(0, 20) / 20,
        "domain": rng.choice(DOMAINS),
    }


def _oracle_grade(score: float) -> str:
    return "good" if score > 0.62 else "fair" if score > 0.38 else "poor"


def _oracle_before(row: Row) -> str:
    return _oracle_grade(0.7 * row["retrieval_score"] + 0.06 * min(row["sources"], 5))


def _oracle_after(row: Row) -> str:
    # The docs and search indexes were rebuilt with a broken embedding: a high
    # retrieval score there now means an off-topic passage.
    if row["domain"] in ("docs", "search"):
        return _oracle_grade(0.7 * (1 - row["retrieval_score"]) + 0.06 * min(row["sources"], 5))
    return _oracle_before(row)


# -- AI GM: will the player stay engaged with a scene? ------------------------------------

GENRES = ("fantasy", "scifi", "horror", "mystery")


def _gm_draw(rng: random.Random) -> Row:
    return {
        "session_minutes": rng.randint(1, 90),
        "quests_done": rng.randint(0, 10),
        "difficulty": rng.randint(1, 5),
        "genre": rng.choice(GENRES),
    }


def _gm_interest(row: Row) -> float:
    return 8.0 * int(row["quests_done"]) + 0.5 * int(row["session_minutes"])


def _gm_before(row: Row) -> bool:
    return _gm_interest(row) > 30 + 8 * int(row["difficulty"])


def _gm_after(row: Row) -> bool:
    # A new season: players came for the challenge, so hard scenes now hold them and
    # easy ones bore them.
    return _gm_interest(row) > 110 - 25 * int(row["difficulty"])


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        service="daisy-chain",
        task="task-success",
        title="Daisy Chain - does an agent workflow succeed?",
        objective=Objective.BINARY,
        label_spec=LabelSpec(type=LabelType.BOOL),
        features=(
            FeatureSpec(name="steps", type=FeatureType.INT),
            FeatureSpec(name="retries", type=FeatureType.FLOAT),
            FeatureSpec(name="agent", type=FeatureType.CATEGORY),
        ),
        draw=_daisy_draw,
        before=_daisy_before,
        after=_daisy_after,
        drift_story="coder and tester agents swapped behaviour after a model release",
    ),
    Scenario(
        service="oracle",
        task="knowledge-quality",
        title="Oracle - how good is an answer's supporting knowledge?",
        objective=Objective.MULTICLASS,
        label_spec=LabelSpec(type=LabelType.CATEGORY, classes=QUALITY),
        features=(
            FeatureSpec(name="sources", type=FeatureType.INT),
            FeatureSpec(name="retrieval_score", type=FeatureType.FLOAT),
            FeatureSpec(name="domain", type=FeatureType.CATEGORY),
        ),
        draw=_oracle_draw,
        before=_oracle_before,
        after=_oracle_after,
        drift_story="docs and search indexes rebuilt with a broken embedding",
    ),
    Scenario(
        service="ai-gm",
        task="player-engagement",
        title="AI GM - will the player stay engaged with a scene?",
        objective=Objective.BINARY,
        label_spec=LabelSpec(type=LabelType.BOOL),
        features=(
            FeatureSpec(name="session_minutes", type=FeatureType.INT),
            FeatureSpec(name="quests_done", type=FeatureType.INT),
            FeatureSpec(name="difficulty", type=FeatureType.INT),
            FeatureSpec(name="genre", type=FeatureType.CATEGORY),
        ),
        draw=_gm_draw,
        before=_gm_before,
        after=_gm_after,
        drift_story="a new season: players now want hard scenes",
    ),
)
