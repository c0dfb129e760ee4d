"""The ensemble section of a task and the ensemble form of a model version."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from flywheel import serde
from flywheel.ensembles import combine_raw, link, member_texts, member_version, pack_members
from flywheel.errors import EventValidationError, ModelError, ModelIntegrityError
from flywheel.events import EnsembleMemberRecord, EnsembleParameters, ModelVersion
from flywheel.serde import validation_error_message
from flywheel.tasks import Objective, TaskDefinition

BASE: dict[str, Any] = {
    "name": "ai-gm.test",
    "objective": "binary",
    "label": {"type": "bool"},
    "features": [{"name": "level", "type": "int"}],
    "training": {"window_events": 5_000, "max_trees": 120},
}
MEMBERS = [
    {"name": "long", "training": {"strategy": "window", "window_events": 20_000}},
    {"name": "short", "training": {"window_events": 1_000}},
]


def _task(ensemble: Any) -> TaskDefinition:
    return TaskDefinition.model_validate({**BASE, "ensemble": ensemble})


def _error(ensemble: Any) -> str:
    with pytest.raises(ValueError) as info:
        _task(ensemble)
    return validation_error_message(info.value)


def test_a_task_without_an_ensemble_serialises_as_before() -> None:
    task = TaskDefinition.model_validate(BASE)
    assert task.ensemble is None
    assert "ensemble" not in task.model_dump(mode="json")
    assert b"ensemble" not in serde.encode(task)
    assert task.member_tasks() == []


def test_members_inherit_the_task_policy_and_override_only_what_they_set() -> None:
    task = _task({"combine": "stacked", "members": MEMBERS})
    members = dict(task.member_tasks())
    assert list(members) == ["long", "short"]
    assert members["long"].training.strategy == "window"
    assert members["long"].training.window_events == 20_000
    assert members["short"].training.strategy == "auto"  # the task's default
    assert members["short"].training.window_events == 1_000
    assert {m.training.max_trees for m in members.values()} == {120}  # inherited
    assert all(m.ensemble is None and m.features == task.features for m in members.values())
    # Only what a member sets travels; the definition round-trips through its JSON.
    wire = serde.encode(task)
    assert orjson.loads(wire)["ensemble"]["members"][1]["training"] == {"window_events": 1_000}
    assert serde.decode(TaskDefinition, wire) == task


@pytest.mark.parametrize(
    ("ensemble", "field"),
    [
        ({"members": [MEMBERS[0], {**MEMBERS[1], "name": "long"}]}, "ensemble.members"),
        ({"members": MEMBERS[:1]}, "ensemble.members"),
        ({"members": [{"name": f"m{i}"} for i in range(6)]}, "ensemble.members"),
        ({"members": [MEMBERS[0], {"name": "Short"}]}, "ensemble.members.1.name"),
        (
            {"members": [MEMBERS[0], {"name": "s", "training": {"window_events": 10}}]},
            "ensemble.members.1.training.window_events",
        ),
        (
            {"members": [MEMBERS[0], {"name": "s", "training": {"windw": 1000}}]},
            "ensemble.members.1.training.windw",
        ),
        ({"combine": "vote", "members": MEMBERS}, "ensemble.combine"),
        ({"members": MEMBERS, "stack_window_events": 5}, "ensemble.stack_window_events"),
    ],
)
def test_a_bad_ensemble_is_refused_naming_the_field(ensemble: Any, field: str) -> None:
    message = _error(ensemble)
    assert message.startswith(f"{field}:"), message


def test_duplicate_member_names_are_named() -> None:
    assert "duplicate member names: long" in _error(
        {"members": [MEMBERS[0], {**MEMBERS[1], "name": "long"}]}
    )


def _ensemble_version(texts: list[tuple[str, str]], **params: Any) -> ModelVersion:
    document = pack_members(texts)
    return ModelVersion(
        task="ai-gm.test",
        version=3,
        objective=Objective.BINARY,
        model_format="lightgbm-ensemble",
        model_text=document,
        model_sha256=ModelVersion.hash_text(document),
        feature_schema=TaskDefinition.model_validate(BASE).features,
        calibration={"method": "platt", "a": 1.0, "b": 0.0},
        trees=4,
        events_trained=10,
        ensemble=EnsembleParameters(
            combine="average",
            weights=(0.5, 0.5),
            members=tuple(
                EnsembleMemberRecord(
                    name=name,
                    model_sha256=ModelVersion.hash_text(text),
                    trees=2,
                    events_trained=10,
                    window_events=10,
                    calibration={"method": "none"},
                )
                for name, text in texts
            ),
            **params,
        ),
    )


def test_an_ensemble_version_round_trips_and_unpacks_its_members() -> None:
    version = _ensemble_version([("long", "tree-text-long"), ("short", "tree-text-short")])
    decoded = serde.decode(ModelVersion, serde.encode(version), max_bytes=1 << 20)
    assert decoded == version
    assert member_texts(decoded) == [("long", "tree-text-long"), ("short", "tree-text-short")]
    short = member_version(decoded, "short")
    assert short.model_text == "tree-text-short" and short.ensemble is None
    assert short.calibration == {"method": "none"}  # the member's own, not the ensemble's
    with pytest.raises(ModelError, match="no member named"):
        member_version(decoded, "medium")


def test_a_tampered_member_is_refused() -> None:
    version = _ensemble_version([("long", "a"), ("short", "b")])
    swapped = pack_members([("long", "a"), ("short", "evil")])
    tampered = version.model_copy(
        update={"model_text": swapped, "model_sha256": ModelVersion.hash_text(swapped)}
    )
    with pytest.raises(ModelIntegrityError, match="member short"):
        member_texts(tampered)
    with pytest.raises(ModelIntegrityError, match="does not match its hash"):
        member_texts(version.model_copy(update={"model_text": swapped}))


def test_single_versions_serialise_without_the_ensemble_field() -> None:
    version = _ensemble_version([("long", "a"), ("short", "b")])
    single = version.model_copy(
        update={"model_format": "lightgbm-text", "ensemble": None, "model_text": "t"}
    )
    assert "ensemble" not in orjson.loads(serde.encode(single))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weights": [0.5, 0.25, 0.25]}, "weights"),
        ({"weights": [1.5, -0.5]}, "weights"),
        ({"model_format": "lightgbm-text"}, "ensemble"),
    ],
)
def test_inconsistent_ensemble_versions_are_refused(change: dict[str, Any], message: str) -> None:
    raw = orjson.loads(serde.encode(_ensemble_version([("long", "a"), ("short", "b")])))
    if "weights" in change:
        raw["ensemble"]["weights"] = change["weights"]
    else:
        raw.update(change)
    with pytest.raises(EventValidationError) as info:
        serde.decode(ModelVersion, orjson.dumps(raw), max_bytes=1 << 20)
    assert message in str(info.value)


def test_the_combiner_weights_raw_scores_then_applies_the_link() -> None:
    raw = [np.array([2.0, -1.0]), np.array([0.0, 3.0])]
    z = combine_raw(raw, (0.75, 0.25), 0.5)
    np.testing.assert_allclose(z, [2.0, 0.5])
    np.testing.assert_allclose(link(Objective.BINARY, z), 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(link(Objective.REGRESSION, z), z)
    classes = link(Objective.MULTICLASS, np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(classes, [[0.25, 0.75]])
    with pytest.raises(ModelError):
        combine_raw(raw, (1.0,), 0.0)
