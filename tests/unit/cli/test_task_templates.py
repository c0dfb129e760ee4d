"""The task templates in examples/tasks: valid, one documented task per file, listed.

Every ``*.yaml`` there is checked, including templates added later (the ensemble one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.tasks import load_task_file
from tests.unit.cli.integrate_helpers import REPO, TEMPLATES

FILES = sorted(TEMPLATES.glob("*.yaml"))
README = (REPO / "examples" / "README.md").read_text()


def test_the_seed_templates_are_all_there() -> None:
    names = {f.stem for f in FILES}
    assert {
        "daisy-chain.task-success",
        "daisy-chain.workflow-success",
        "daisy-chain.code-quality",
        "oracle.knowledge-quality",
        "oracle.relevance",
        "oracle.confidence-calibration",
        "ai-gm.batch-outcome",
        "ai-gm.player-engagement",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_template_is_one_documented_task_named_like_its_file(path: Path) -> None:
    (task,) = load_task_file(path)
    assert task.name == path.stem
    assert task.owner, "say which team owns the task"
    assert len(task.description) >= 80, "say what is predicted and where feedback comes from"
    text = path.read_text()
    # Flush settings are a choice per task: written out, with a comment saying why.
    assert "flush:" in text
    assert f"flywheel tasks apply examples/tasks/{path.name}" in text
    assert f"(tasks/{path.name})" in README, "list the template in examples/README.md"


def test_showcase_templates_say_how_their_feature_is_used() -> None:
    (batch,) = load_task_file(TEMPLATES / "ai-gm.batch-outcome.yaml")
    assert "predictions.requests" in batch.description
    assert "predictions.results" in batch.description
    (engagement,) = load_task_file(TEMPLATES / "ai-gm.player-engagement.yaml")
    assert "features.online" in engagement.description
    assert "entity_id" in engagement.description
    (calibration,) = load_task_file(TEMPLATES / "oracle.confidence-calibration.yaml")
    assert calibration.training.calibration == "isotonic"
    (relevance,) = load_task_file(TEMPLATES / "oracle.relevance.yaml")
    assert relevance.objective.value in ("ranking", "regression")
