"""Task definitions: the YAML contract, coherence rules, and the per-event checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import EventValidationError, TaskError
from flywheel.tasks import Objective, TaskDefinition, load_task_file

CONTRACT_YAML = """\
name: daisy-chain.task-success      # [a-z0-9][a-z0-9._-]{0,127}
objective: binary                   # binary | multiclass | regression | ranking
label: {type: bool}                 # bool | int | float | category
features:
  - {name: steps, type: int}
  - {name: retries, type: float}
  - {name: agent, type: category}
flush: {max_events: 500, max_age_s: 2}
"""


@pytest.fixture
def task(tmp_path: Path) -> TaskDefinition:
    path = tmp_path / "task.yaml"
    path.write_text(CONTRACT_YAML)
    (loaded,) = load_task_file(path)
    return loaded


def test_architecture_contract_yaml_loads(task: TaskDefinition) -> None:
    assert task.name == "daisy-chain.task-success"
    assert task.objective is Objective.BINARY
    assert task.feature_names == ("steps", "retries", "agent")
    assert task.flush.max_events == 500
    assert task.flush.max_age_s == 2


def test_a_file_may_hold_a_list_of_tasks(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    second = CONTRACT_YAML.replace("daisy-chain.task-success", "oracle.relevance")
    path.write_text(
        "- " + CONTRACT_YAML.replace("\n", "\n  ") + "\n- " + second.replace("\n", "\n  ")
    )
    assert [t.name for t in load_task_file(path)] == [
        "daisy-chain.task-success",
        "oracle.relevance",
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("binary", "sometimes"), "objective"),
        (("{type: bool}", "{type: float}"), "needs a label of type bool"),
        (("daisy-chain.task-success", "Daisy Chain"), "name"),
        (("max_events: 500", "max_events: 0"), "flush.max_events"),
        (("{name: agent, type: category}", "{name: steps, type: category}"), "duplicate feature"),
        (("type: int}", "type: int, colour: red}"), "colour"),
    ],
)
def test_bad_definitions_name_what_is_wrong(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CONTRACT_YAML.replace(*edit))
    with pytest.raises(TaskError, match=message):
        load_task_file(path)


def test_broken_yaml_is_a_task_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(TaskError, match="not valid YAML"):
        load_task_file(path)


def test_category_label_needs_classes() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        TaskDefinition.model_validate(
            {
                "name": "m",
                "objective": "multiclass",
                "label": {"type": "category"},
                "features": [{"name": "x", "type": "float"}],
            }
        )


def test_good_features_pass(task: TaskDefinition) -> None:
    task.check_features({"steps": 3, "retries": 1, "agent": "planner"})
    task.check_label(True)
    task.check_label(0)


@pytest.mark.parametrize(
    ("features", "field", "reason"),
    [
        ({"steps": 3, "retries": 1.0}, "features.agent", "missing_feature"),
        (
            {"steps": 3, "retries": 1.0, "agent": "a", "extra": 1},
            "features.extra",
            "unexpected_feature",
        ),
        ({"steps": 3.5, "retries": 1.0, "agent": "a"}, "features.steps", "wrong_type"),
        ({"steps": True, "retries": 1.0, "agent": "a"}, "features.steps", "wrong_type"),
        ({"steps": 3, "retries": "1", "agent": "a"}, "features.retries", "wrong_type"),
        ({"steps": 3, "retries": float("inf"), "agent": "a"}, "features.retries", "non_finite"),
        ({"steps": 3, "retries": 1.0, "agent": 7}, "features.agent", "wrong_type"),
        ({"steps": 3, "retries": 1.0, "agent": ""}, "features.agent", "wrong_type"),
        ({"steps": None, "retries": 1.0, "agent": "a"}, "features.steps", "wrong_type"),
    ],
)
def test_feature_checks_name_the_feature(
    task: TaskDefinition, features: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(EventValidationError) as info:
        task.check_features(features)
    assert info.value.field == field
    assert info.value.reason == reason
    assert field in str(info.value)


@pytest.mark.parametrize("label", ["yes", 2, 1.0, None])
def test_wrong_labels_are_refused(task: TaskDefinition, label: object) -> None:
    with pytest.raises(EventValidationError) as info:
        task.check_label(label)
    assert info.value.field == "label"


def test_nullable_features_may_be_missing_or_null() -> None:
    task = TaskDefinition.model_validate(
        {
            "name": "r",
            "objective": "regression",
            "label": {"type": "float"},
            "features": [{"name": "x", "type": "float", "nullable": True}],
        }
    )
    task.check_features({})
    task.check_features({"x": None})
    task.check_label(2.5)
    with pytest.raises(EventValidationError, match="finite"):
        task.check_label(float("nan"))
