"""The in-memory registry view: versions, champions, retirements, record decoding."""

from __future__ import annotations

import pytest

from flywheel import serde
from flywheel.errors import SerdeError
from flywheel.events import ModelVersion
from flywheel.registry import (
    RegistryView,
    champion_change,
    decode_registry_record,
    registry_record,
)
from flywheel.tasks import FeatureSpec, FeatureType, Objective


def _version(task: str, number: int, text: str = "tree") -> ModelVersion:
    return ModelVersion(
        task=task,
        version=number,
        objective=Objective.BINARY,
        model_text=text,
        model_sha256=ModelVersion.hash_text(text),
        feature_schema=(FeatureSpec(name="x", type=FeatureType.FLOAT),),
        trees=1,
        events_trained=10 * number,
    )


def _apply(view: RegistryView, event: ModelVersion | object) -> None:
    key, value = registry_record(event)  # type: ignore[arg-type]
    view.apply(key, value)


def test_champion_is_the_version_named_by_the_latest_change() -> None:
    view = RegistryView()
    for n in (1, 2, 3):
        _apply(view, _version("t", n))
    assert view.champion("t") is None
    _apply(view, champion_change(view, "t", 1, kind="promotion", reason="first"))
    _apply(view, champion_change(view, "t", 3, kind="promotion", reason="better"))
    change = champion_change(view, "t", 1, kind="rollback", reason="operator")
    assert change.sequence == 3 and change.previous_version == 3
    _apply(view, change)
    champion = view.champion("t")
    assert champion is not None and champion.version == 1
    assert [c.kind for c in view.history("t")] == ["promotion", "promotion", "rollback"]
    assert view.next_version("t") == 4


def test_tombstone_retires_a_version_but_its_number_is_never_reused() -> None:
    view = RegistryView()
    _apply(view, _version("t", 1))
    _apply(view, _version("t", 2))
    view.apply(b"t@v2", None)
    assert [v.version for v in view.versions("t")] == [1]
    assert view.next_version("t") == 3


def test_apply_is_idempotent_and_tasks_are_separate() -> None:
    view = RegistryView()
    for _ in range(2):
        _apply(view, _version("a", 1))
        _apply(view, _version("b.c", 1))
    assert view.tasks() == ["a", "b.c"]
    assert len(view.versions("a")) == 1
    assert view.version("zzz", 1) is None and view.history("zzz") == []


def test_decode_refuses_an_unknown_kind_with_a_reason() -> None:
    with pytest.raises(SerdeError) as err:
        decode_registry_record(b'{"kind": "bogus"}')
    assert err.value.reason == "invalid_field"
    with pytest.raises(SerdeError) as err:
        decode_registry_record(b"[1")
    assert err.value.reason == "broken_json"
    version = _version("t", 1)
    assert decode_registry_record(serde.encode(version)) == version


def test_the_registry_api_is_pinned() -> None:
    # The predictor, trainer and CLI build on these names: changing them breaks services.
    import flywheel.registry

    assert sorted(flywheel.registry.__all__) == [
        "MAX_REGISTRY_RECORD_BYTES",
        "ModelCache",
        "ModelRegistry",
        "RegistryRecord",
        "RegistryView",
        "TaskModels",
        "announcement",
        "champion_change",
        "decode_registry_record",
        "make_registry_producer",
        "publish_registry_records",
        "rebuild_cache",
        "reconcile_cache",
        "registry_record",
    ]
    assert all(hasattr(flywheel.registry, name) for name in flywheel.registry.__all__)
