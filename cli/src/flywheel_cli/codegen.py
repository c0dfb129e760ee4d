"""What ``flywheel integrate`` writes: a task definition rendered into Python and Markdown.

Pure functions of the task and the service name (no clock, no environment), so the
same schema always generates byte-identical files. The templates are package data
under ``flywheel_cli/templates/integrate``; this module decides the names and types
they use, so the templates stay free of logic beyond loops and conditionals.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel

from flywheel.errors import FlywheelError
from flywheel.tasks import MAX_CATEGORY_LEN, FeatureType, LabelType, Objective, TaskDefinition

__all__ = [
    "GeneratedFile",
    "IntegrationError",
    "module_name",
    "render_integration",
    "validate_service_name",
]


class IntegrationError(FlywheelError):
    """The inputs of ``flywheel integrate`` cannot produce a client (the message says why)."""


@dataclass(frozen=True)
class GeneratedFile:
    """One generated file: ``path`` is relative to the output directory."""

    path: str
    text: str


@dataclass(frozen=True)
class FeatureView:
    """A feature as the generated model declares it."""

    name: str  # the wire name, as in the task
    attr: str  # the Python attribute (differs when ``name`` is not a usable identifier)
    annotation: str  # the type of a full row's field
    partial_annotation: str  # the type in the partial (entity) model
    nullable: bool
    example: str  # a Python literal of the right type, for tests and the guide

    @property
    def aliased(self) -> bool:
        return self.attr != self.name

    @property
    def declaration(self) -> str:
        return _declaration(self, self.annotation, optional=self.nullable)

    @property
    def partial_declaration(self) -> str:
        return _declaration(self, self.partial_annotation, optional=True)


# Layout is decided for ruff's default line length (88); whatever is split is split with
# a magic trailing comma, so ``ruff format`` keeps the same layout at 100 (this
# repository) and at 88 (most projects).
_LINE = 88
# E501 is checked at this repository's 100 (ruff's default rules leave it off).
_LINT_LINE = 100
_INDENT = "    "


def _declaration(feature: FeatureView, annotation: str, *, optional: bool) -> str:
    """A model field as ``ruff format`` lays it out (continuation lines indented once)."""
    head = f"{feature.attr}: {annotation}"
    if not feature.aliased:
        return f"{head} = None" if optional else head
    wire = _py_str(feature.name)
    args = [f"validation_alias={wire}", f"serialization_alias={wire}"]
    if optional:
        args.insert(0, "default=None")
    one_line = f"{head} = Field({', '.join(args)})"
    if len(_INDENT) + len(one_line) <= _LINE:
        return one_line
    lines = "".join(f"{_INDENT * 2}{arg},\n" for arg in args)
    return f"{head} = Field(\n{lines}{_INDENT})"


_ANNOTATIONS = {
    FeatureType.INT: "int",
    FeatureType.FLOAT: "float",
    FeatureType.BOOL: "bool",
    FeatureType.CATEGORY: "Category",
}
_EXAMPLES = {
    FeatureType.INT: "3",
    FeatureType.FLOAT: "0.5",
    FeatureType.BOOL: "True",
    FeatureType.CATEGORY: '"example"',
}
# Attribute names a pydantic model cannot use for a field (they are its own methods),
# plus the two the generated models define themselves.
_RESERVED = frozenset(name for name in dir(BaseModel) if not name.startswith("__")) | {
    "row",
    "model_config",
}


def validate_service_name(service: str) -> str:
    """The service name becomes a directory, a default ``source`` and part of a module name."""
    if not service.isidentifier() or keyword.iskeyword(service) or not service.isascii():
        suggestion = re.sub(r"\W", "_", service.strip()) or "my_service"
        if suggestion[0].isdigit():
            suggestion = f"svc_{suggestion}"
        raise IntegrationError(
            f"service name {service!r} is not a Python identifier "
            f"(letters, digits and _, not starting with a digit), e.g. {suggestion!r}"
        )
    return service


def module_name(task_name: str) -> str:
    """``daisy-chain.task-success`` -> ``daisy_chain_task_success``."""
    ident = re.sub(r"[^a-z0-9_]", "_", task_name.lower())
    if ident[0].isdigit():
        ident = f"task_{ident}"
    return f"{ident}_" if keyword.iskeyword(ident) else ident


def _usable(name: str) -> bool:
    # A leading underscore would make pydantic treat the field as a private attribute.
    return (
        name.isidentifier()
        and not name.startswith("_")
        and not keyword.iskeyword(name)
        and name not in _RESERVED
    )


def _attributes(names: list[str]) -> list[str]:
    """A Python attribute per feature: the name itself when usable, else a sanitized
    one that is no other feature's name (validation accepts both, so they must differ)."""
    taken = set(names)
    attrs = []
    for name in names:
        if _usable(name):
            attrs.append(name)
            continue
        base = re.sub(r"\W", "_", name)
        if base.startswith("_"):
            base = f"f{base}"
        if keyword.iskeyword(base) or base in _RESERVED:
            base = f"{base}_"
        attr, n = base, 2
        while attr in taken:
            attr, n = f"{base}_{n}", n + 1
        taken.add(attr)
        attrs.append(attr)
    return attrs


def _features(task: TaskDefinition) -> list[FeatureView]:
    views = []
    attrs = _attributes([spec.name for spec in task.features])
    for spec, attr in zip(task.features, attrs, strict=True):
        base = _ANNOTATIONS[spec.type]
        views.append(
            FeatureView(
                name=spec.name,
                attr=attr,
                annotation=f"{base} | None" if spec.nullable else base,
                partial_annotation=f"{base} | None",
                nullable=spec.nullable,
                example=_EXAMPLES[spec.type],
            )
        )
    return views


def _label_annotation(task: TaskDefinition) -> str:
    if task.label.type is not LabelType.CATEGORY:
        return task.label.type.value
    classes = [_py_str(c) for c in task.label.classes]
    one_line = "Literal[" + ", ".join(classes) + "]"
    if len("Label: TypeAlias = ") + len(one_line) <= _LINE:
        return one_line
    return "Literal[\n" + "".join(f"{_INDENT}{c},\n" for c in classes) + "]"


def _label_example(task: TaskDefinition) -> str:
    kind = task.label.type
    if kind is LabelType.CATEGORY:
        return _py_str(task.label.classes[0])
    return {LabelType.BOOL: "True", LabelType.INT: "1", LabelType.FLOAT: "1.0"}[kind]


def _py_str(value: str) -> str:
    """A Python string literal quoted as ``ruff format`` quotes it: double quotes unless
    the value holds more double than single quotes."""
    quote = "'" if value.count('"') > value.count("'") else '"'
    body = value.replace("\\", "\\\\").replace(quote, f"\\{quote}")
    body = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in body)
    return f"{quote}{body}{quote}"


def _fit(line: str, indent: int) -> str:
    """``line`` unchanged, or marked for the line-length check when a long task or
    feature name makes it unbreakable (a string atom cannot be wrapped)."""
    return line if indent + len(line) <= _LINT_LINE else f"{line}  # noqa: E501"


def _tuple(literals: list[str]) -> str:
    """A tuple display as ``ruff format`` keeps it: one element inline, more exploded
    with a trailing comma (which pins the layout)."""
    if len(literals) == 1:
        return f"({literals[0]},)"
    return "(\n" + "".join(f"{_INDENT}{lit},\n" for lit in literals) + ")"


def _md_text(value: str) -> str:
    # Descriptions are free text; keep them on their lines and out of code spans.
    return value.strip().replace("`", "'")


def _docstring_text(value: str) -> str:
    return value.strip().replace("\\", "\\\\").replace('"""', "'''")


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("flywheel_cli", "templates/integrate"),
        autoescape=False,  # noqa: S701 - renders Python and Markdown, never HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_integration(
    task: TaskDefinition, service: str, *, schema_path: str
) -> list[GeneratedFile]:
    """The client module, its test and the integration guide for ``task``."""
    validate_service_name(service)
    module = module_name(task.name)
    objective = task.objective
    classifier = objective in (Objective.BINARY, Objective.MULTICLASS)
    features = _features(task)
    context: dict[str, Any] = {
        "task": task,
        "service": service,
        "schema_path": schema_path,
        "module": module,
        "features": features,
        "objective": objective.value,
        "classifier": classifier,
        "binary": objective is Objective.BINARY,
        "label_kind": task.label.type.value,
        "label_annotation": _label_annotation(task),
        "label_example": _label_example(task),
        "classes": [_py_str(c) for c in task.label.classes],
        "class_names": list(task.label.classes),
        "max_category_len": MAX_CATEGORY_LEN,
        "py_str": _py_str,
        "md_text": _md_text,
        "docstring_text": _docstring_text,
    }
    category_label = task.label.type is LabelType.CATEGORY
    typing_names = ["Annotated", "Any", "Final", "Self", "TypeAlias"]
    if category_label:
        typing_names.append("Literal")
    constants = ["FEATURE_NAMES", "OBJECTIVE", "SERVICE", "TASK"]
    if category_label:
        constants.append("CLASSES")
    classes = [
        "AsyncClient",
        "Client",
        "Features",
        "FlywheelClientError",
        "Label",
        "NoModel",
        "PartialFeatures",
        "PlatformUnavailable",
        "Prediction",
        "PredictionResult",
        "ValidationRejected",
    ]
    functions = ["batch_request", "entity_features", "feedback_event", "predictions_from_batch"]
    first = context["features"][0]
    context |= {
        "schema_name": Path(schema_path).name,
        "typing_imports": ", ".join(sorted(typing_names)),
        # ruff's RUF022 order: constants, then classes, then the rest, each sorted.
        "exports": [*sorted(constants), *sorted(classes), *sorted(functions)],
        "import_line": _fit(f"from {module} import (", 0),
        # A value the first feature's type refuses (strict: no coercion between types).
        "wrong_value": "3" if first.annotation.startswith("Category") else '"not a number"',
        "task_line": _fit(f"TASK: Final = {_py_str(task.name)}", 0),
        "service_line": _fit(f"SERVICE: Final = {_py_str(service)}", 0),
        "feature_names_tuple": _tuple([_py_str(f.name) for f in task.features]),
        "classes_tuple": _tuple([_py_str(c) for c in task.label.classes]),
    }
    env = _environment()
    return [
        GeneratedFile(f"{module}.py", env.get_template("client.py.jinja").render(context)),
        GeneratedFile(f"test_{module}.py", env.get_template("test.py.jinja").render(context)),
        GeneratedFile(f"{module}.md", env.get_template("guide.md.jinja").render(context)),
    ]
