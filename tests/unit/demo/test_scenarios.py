"""The simulated services' tasks, traffic and ground truth (no I/O)."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from flywheel.tasks import TASK_NAME_PATTERN, Objective
from flywheel_demo.scenarios import HOT_ROW_SHARE, LABEL_NOISE, SCENARIOS, Scenario, task_name

IDS = [scenario.service for scenario in SCENARIOS]


def test_three_services_one_task_each_under_the_demo_namespace() -> None:
    names = [task_name(scenario) for scenario in SCENARIOS]
    assert names == [
        "demo.daisy-chain.task-success",
        "demo.oracle.knowledge-quality",
        "demo.ai-gm.player-engagement",
    ]
    assert all(re.match(TASK_NAME_PATTERN, name) for name in names)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_rows_and_labels_fit_the_task_definition(scenario: Scenario) -> None:
    definition = scenario.definition(task_name(scenario))
    rng = random.Random(1)
    next_row = scenario.rows(rng)
    for drifted in (False, True):
        for _ in range(300):
            row = next_row()
            definition.check_features(row)  # raises naming the field if a row breaks it
            definition.check_label(scenario.label(row, drifted=drifted, rng=rng))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_the_drift_changes_the_truth_for_a_large_share_of_rows(scenario: Scenario) -> None:
    rng = random.Random(2)
    rows = [scenario.draw(rng) for _ in range(5_000)]
    changed = sum(scenario.before(row) != scenario.after(row) for row in rows) / len(rows)
    # Enough that a model of the old world is visibly wrong, not so much that it is
    # simply inverted (which a classifier would not need to re-learn the features for).
    assert 0.3 <= changed <= 0.6, changed


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_both_concepts_use_every_label(scenario: Scenario) -> None:
    rng = random.Random(3)
    rows = [scenario.draw(rng) for _ in range(5_000)]
    for concept in (scenario.before, scenario.after):
        counts = Counter(concept(row) for row in rows)
        expected = scenario.label_spec.classes or (False, True)
        assert set(counts) == set(expected)
        assert min(counts.values()) / len(rows) > 0.1, counts


def test_label_noise_flips_about_the_configured_share() -> None:
    scenario = SCENARIOS[0]
    rng = random.Random(4)
    rows = [scenario.draw(rng) for _ in range(20_000)]
    flipped = sum(
        scenario.label(row, drifted=False, rng=rng) != scenario.before(row) for row in rows
    )
    assert flipped / len(rows) == pytest.approx(LABEL_NOISE, abs=0.006)


def test_multiclass_noise_picks_another_class() -> None:
    oracle = next(s for s in SCENARIOS if s.objective is Objective.MULTICLASS)
    rng = random.Random(5)
    labels = {oracle.label({"sources": 8, "retrieval_score": 1.0, "domain": "code"},
                           drifted=False, rng=rng) for _ in range(2_000)}  # fmt: skip
    assert labels == {"good", "fair", "poor"}


def test_a_share_of_requests_repeat_popular_rows() -> None:
    rng = random.Random(6)
    next_row = SCENARIOS[0].rows(rng)
    rows = [tuple(sorted(next_row().items())) for _ in range(4_000)]
    repeated = sum(count for count in Counter(rows).values() if count > 20)
    assert repeated / len(rows) == pytest.approx(HOT_ROW_SHARE, abs=0.05)


def test_definitions_carry_the_demo_flush_and_training_policy() -> None:
    definition = SCENARIOS[1].definition("demo.oracle.knowledge-quality")
    assert definition.objective is Objective.MULTICLASS
    assert definition.label.classes == ("poor", "fair", "good")
    assert definition.flush.max_age_s == 8.0
    assert definition.training.window_events == 1_500
    assert definition.owner == "flywheel-demo"
