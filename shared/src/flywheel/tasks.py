"""Task definitions: the contract a client service signs when it asks for predictions.

A task is declared in YAML (see ARCHITECTURE.md) and applied with
``flywheel tasks apply FILE``; the definition lives in the compacted ``tasks`` topic.
:meth:`TaskDefinition.check_features` and :meth:`TaskDefinition.check_label` are the one
place an event's payload is checked against its task, so ingest and the predictor
refuse exactly the same things with exactly the same reasons.
"""

from __future__ import annotations

import math
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from flywheel.errors import EventValidationError, TaskError
from flywheel.serde import validation_error_message

__all__ = [
    "FEATURE_NAME_PATTERN",
    "MEMBER_NAME_PATTERN",
    "TASK_NAME_PATTERN",
    "EnsembleMember",
    "EnsembleSpec",
    "FeatureName",
    "FeatureSpec",
    "FeatureType",
    "FeatureValue",
    "FlushPolicy",
    "LabelSpec",
    "LabelType",
    "LabelValue",
    "MemberName",
    "Objective",
    "TaskDefinition",
    "TaskName",
    "TrainingOverrides",
    "TrainingPolicy",
    "load_task_file",
    "omit_if_absent",
]

TASK_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
FEATURE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$"
MAX_FEATURES = 256
MAX_CATEGORY_LEN = 256

# Member names end up in metric labels and registry keys: short, lower-case, no dots.
MEMBER_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"

TaskName = Annotated[str, Field(pattern=TASK_NAME_PATTERN)]
FeatureName = Annotated[str, Field(pattern=FEATURE_NAME_PATTERN)]
MemberName = Annotated[str, Field(pattern=MEMBER_NAME_PATTERN)]


def _scalar(value: Any, *, nullable: bool) -> Any:
    # One validator instead of a pydantic Union: a union reports errors under the
    # branch names (``features.x.bool``), and the field path must be ``features.x``.
    if value is None and nullable:
        return value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    raise ValueError(f"must be a number, bool or string, not {type(value).__name__}")


_SCALAR_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}]}

# A raw feature value as it travels in an event. Types are checked against the task.
FeatureValue = Annotated[
    bool | int | float | str | None,
    PlainValidator(partial(_scalar, nullable=True)),
    WithJsonSchema({"anyOf": [*_SCALAR_SCHEMA["anyOf"], {"type": "null"}]}),
]
# An observed outcome: bool, int, float or category string (checked against the task).
LabelValue = Annotated[
    bool | int | float | str,
    PlainValidator(partial(_scalar, nullable=False)),
    WithJsonSchema(_SCALAR_SCHEMA),
]


class Objective(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    RANKING = "ranking"


class FeatureType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CATEGORY = "category"


class LabelType(StrEnum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    CATEGORY = "category"


def omit_if_absent(data: Any, name: str, value: object) -> Any:
    """Serialised ``data`` without field ``name`` while its ``value`` is None.

    For optional fields added after records were first written: a record that does not
    use the field serialises exactly as before, so readers that predate it (``extra``
    is forbidden everywhere) keep accepting it.
    """
    if value is None and isinstance(data, dict):
        data.pop(name, None)
    return data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FeatureSpec(_Strict):
    name: FeatureName
    type: FeatureType
    # Missing values are allowed only where the task says so; LightGBM handles them.
    nullable: bool = False


class LabelSpec(_Strict):
    type: LabelType
    # For category labels: the closed set of classes (order = class index).
    classes: tuple[Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY_LEN)], ...] = ()


class FlushPolicy(_Strict):
    """When stream-ingest flushes a task's buffer: at ``max_events`` or ``max_age_s``."""

    max_events: int = Field(default=500, ge=1, le=100_000)
    max_age_s: float = Field(default=2.0, gt=0, le=3600)


# The training knobs, bounded once here for TrainingPolicy and an ensemble member's
# overrides alike.
Strategy = Literal["auto", "window", "append", "refit"]
WindowEvents = Annotated[int, Field(ge=100, le=1_000_000)]
MaxTrees = Annotated[int, Field(ge=1, le=5_000)]
TreesPerUpdate = Annotated[int, Field(ge=1, le=500)]
NumLeaves = Annotated[int, Field(ge=2, le=1024)]
LearningRate = Annotated[float, Field(gt=0, le=1)]
MinEventsToTrain = Annotated[int, Field(ge=1, le=100_000)]
CalibrationMethod = Literal["isotonic", "platt", "none"]


class TrainingPolicy(_Strict):
    """How the trainer keeps the model learning while staying bounded."""

    strategy: Strategy = "auto"
    window_events: WindowEvents = 5_000
    max_trees: MaxTrees = 200
    trees_per_update: TreesPerUpdate = 20
    num_leaves: NumLeaves = 31
    learning_rate: LearningRate = 0.05
    min_events_to_train: MinEventsToTrain = 50
    calibration: CalibrationMethod = "isotonic"


class TrainingOverrides(_Strict):
    """An ensemble member's changes to the task's :class:`TrainingPolicy` (unset = inherit)."""

    strategy: Strategy | None = None
    window_events: WindowEvents | None = None
    max_trees: MaxTrees | None = None
    trees_per_update: TreesPerUpdate | None = None
    num_leaves: NumLeaves | None = None
    learning_rate: LearningRate | None = None
    min_events_to_train: MinEventsToTrain | None = None
    calibration: CalibrationMethod | None = None

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    def apply(self, policy: TrainingPolicy) -> TrainingPolicy:
        changes = self.model_dump()  # only the fields the member sets
        return TrainingPolicy.model_validate({**policy.model_dump(), **changes})


class EnsembleMember(_Strict):
    """One model of an ensemble: a name and how its training differs from the task's."""

    name: MemberName
    training: TrainingOverrides = TrainingOverrides()


class EnsembleSpec(_Strict):
    """A task served by 2 to 5 models trained side by side on the same batches.

    ``average`` combines the members' raw scores (log-odds, class logits or values)
    with equal weights; ``stacked`` with non-negative weights and a bias fitted on the
    members' recent out-of-sample scores (the last ``stack_window_events`` events).
    See docs/ensembles.md.
    """

    combine: Literal["average", "stacked"] = "average"
    members: tuple[EnsembleMember, ...] = Field(min_length=2, max_length=5)
    stack_window_events: int = Field(default=2_000, ge=100, le=100_000)

    @field_validator("members")
    @classmethod
    def _unique_names(cls, members: tuple[EnsembleMember, ...]) -> tuple[EnsembleMember, ...]:
        names = [m.name for m in members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate member names: {', '.join(dupes)}")
        return members

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)


class TaskDefinition(_Strict):
    """A task as declared by its owner. Fields may be added over time; none renamed."""

    schema_version: Literal[1] = 1
    name: TaskName
    objective: Objective
    label: LabelSpec
    features: tuple[FeatureSpec, ...] = Field(min_length=1, max_length=MAX_FEATURES)
    flush: FlushPolicy = FlushPolicy()
    training: TrainingPolicy = TrainingPolicy()
    description: str = Field(default="", max_length=2_000)
    owner: str = Field(default="", max_length=128)
    # Absent: one model (the default, and every task written before ensembles existed).
    ensemble: EnsembleSpec | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_ensemble(self, handler: SerializerFunctionWrapHandler) -> Any:
        return omit_if_absent(handler(self), "ensemble", self.ensemble)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {', '.join(dupes)}")
        allowed = _LABELS_FOR[self.objective]
        if self.label.type not in allowed:
            raise ValueError(
                f"objective {self.objective.value} needs a label of type "
                f"{' or '.join(t.value for t in allowed)}, not {self.label.type.value}"
            )
        if self.label.type is LabelType.CATEGORY and len(self.label.classes) < 2:
            raise ValueError("a category label needs at least two classes")
        if self.label.type is not LabelType.CATEGORY and self.label.classes:
            raise ValueError("label.classes only applies to category labels")
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def member_tasks(self) -> list[tuple[str, TaskDefinition]]:
        """``(name, definition)`` per ensemble member: this task with the member's training.

        Empty for a single-model task. A member definition has no ensemble of its own.
        """
        if self.ensemble is None:
            return []
        return [
            (
                m.name,
                self.model_copy(
                    update={"training": m.training.apply(self.training), "ensemble": None}
                ),
            )
            for m in self.ensemble.members
        ]

    def check_features(self, features: dict[str, Any], *, prefix: str = "features") -> None:
        """Raise :class:`EventValidationError` naming the first feature that breaks the schema."""
        specs = {f.name: f for f in self.features}
        for name in features:
            if name not in specs:
                raise EventValidationError(
                    f"{prefix}.{name}: not a feature of task {self.name}",
                    field=f"{prefix}.{name}",
                    reason="unexpected_feature",
                )
        for spec in self.features:
            if spec.name not in features:
                if spec.nullable:
                    continue
                raise EventValidationError(
                    f"{prefix}.{spec.name}: missing (task {self.name} requires it)",
                    field=f"{prefix}.{spec.name}",
                    reason="missing_feature",
                )
            _check_value(spec, features[spec.name], f"{prefix}.{spec.name}")

    def check_label(self, label: Any) -> None:
        """Raise :class:`EventValidationError` (field ``label``) if the label does not fit."""
        kind = self.label.type
        ok: bool
        if kind is LabelType.BOOL:
            ok = isinstance(label, bool) or (type(label) is int and label in (0, 1))
        elif kind is LabelType.INT:
            ok = type(label) is int
        elif kind is LabelType.FLOAT:
            ok = type(label) in (int, float)
            if ok and not math.isfinite(label):
                raise EventValidationError(
                    "label: must be finite", field="label", reason="non_finite"
                )
        else:
            ok = isinstance(label, str) and label in self.label.classes
        if not ok:
            expected = (
                kind.value if kind is not LabelType.CATEGORY else f"one of {self.label.classes}"
            )
            raise EventValidationError(
                f"label: expected {expected}, got {label!r}", field="label", reason="wrong_type"
            )


_LABELS_FOR: dict[Objective, tuple[LabelType, ...]] = {
    Objective.BINARY: (LabelType.BOOL,),
    Objective.MULTICLASS: (LabelType.CATEGORY, LabelType.INT),
    Objective.REGRESSION: (LabelType.FLOAT, LabelType.INT),
    Objective.RANKING: (LabelType.INT, LabelType.FLOAT),
}


def _check_value(spec: FeatureSpec, value: Any, path: str) -> None:
    if value is None:
        if spec.nullable:
            return
        raise EventValidationError(f"{path}: must not be null", field=path, reason="wrong_type")
    kind = spec.type
    if kind is FeatureType.BOOL:
        ok = isinstance(value, bool)
    elif kind is FeatureType.INT:
        ok = type(value) is int
    elif kind is FeatureType.FLOAT:
        ok = type(value) in (int, float)
        if ok and not math.isfinite(value):
            raise EventValidationError(f"{path}: must be finite", field=path, reason="non_finite")
    else:
        ok = isinstance(value, str) and 0 < len(value) <= MAX_CATEGORY_LEN
    if not ok:
        raise EventValidationError(
            f"{path}: expected {kind.value}, got {type(value).__name__} {value!r:.40}",
            field=path,
            reason="wrong_type",
        )


def load_task_file(path: str | Path) -> list[TaskDefinition]:
    """Parse a YAML file holding one task definition or a list of them."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaskError(f"{path}: not valid YAML: {exc}") from exc
    docs = doc if isinstance(doc, list) else [doc]
    tasks: list[TaskDefinition] = []
    for i, item in enumerate(docs):
        if not isinstance(item, dict):
            raise TaskError(f"{path}: entry {i} is not a mapping")
        try:
            tasks.append(TaskDefinition.model_validate(item))
        except ValueError as exc:
            raise TaskError(f"{path}: task {i}: {validation_error_message(exc)}") from exc
    return tasks
