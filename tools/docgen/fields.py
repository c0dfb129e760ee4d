"""One row per field of a pydantic model: name, type, default, constraints, description.

Types and constraints come from the model's JSON Schema (what a client in another
language sees); required/default from ``model_fields``; the description from
``Field(description=...)`` or, where the code documents a field with a comment on the
lines right above it (the house style), from that comment.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

__all__ = ["FieldDoc", "field_docs", "model_summary"]

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldDoc:
    name: str
    type: str
    default: str
    constraints: str
    description: str


def field_docs(
    model: type[BaseModel], *, secret: Callable[[str, FieldInfo], bool]
) -> list[FieldDoc]:
    """Every field of ``model`` in declaration order; ``secret`` fields never show a default."""
    schema = model.model_json_schema(by_alias=False)
    props: dict[str, Schema] = schema.get("properties", {})
    defs: dict[str, Schema] = schema.get("$defs", {})
    rows = []
    for name, info in model.model_fields.items():
        node = _inline_enums(props.get(name, {}), defs)
        hidden = secret(name, info)
        rows.append(
            FieldDoc(
                name=name,
                type="secret string" if hidden and _is_secret_type(info) else type_of(node),
                default=_default(info, hidden=hidden),
                constraints=constraints_of(node),
                description=info.description or field_comment(model, name),
            )
        )
    return rows


def _inline_enums(node: Any, defs: dict[str, Schema]) -> Any:
    """``node`` with references to enum definitions replaced by the enum (its values)."""
    if isinstance(node, list):
        return [_inline_enums(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    target = defs.get(str(node.get("$ref", "")).rsplit("/", 1)[-1], {})
    if "enum" in target:
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: _inline_enums(v, defs) for k, v in node.items()}


def model_summary(model: type[BaseModel]) -> str:
    """The first paragraph of the model's docstring, on one line."""
    # Only the model's own docstring: an undocumented model would inherit BaseModel's.
    doc = inspect.cleandoc(model.__dict__.get("__doc__") or "")
    return " ".join(doc.split("\n\n")[0].split())


def type_of(node: Schema) -> str:  # noqa: PLR0911 (one early return per schema shape)
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    if "const" in node:
        return _literal(node["const"])
    if "enum" in node:
        return " | ".join(_literal(v) for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts: list[str] = []
            for member in node[key]:
                text = type_of(member)
                if text not in parts:
                    parts.append(text)
            return " or ".join(parts)
    kind = node.get("type")
    if kind == "array":
        items = node.get("items") or (node.get("prefixItems") or [{}])[0]
        return f"list of {_grouped(type_of(items))}" if items else "list"
    if kind == "object":
        values = _map_values(node)
        return f"map of {_grouped(type_of(values))}" if values else "object"
    if kind == "string":
        return {"date-time": "timestamp (UTC)", "password": "secret string", "path": "path"}.get(
            str(node.get("format")), "string"
        )
    return str(kind) if kind else "any"


def _grouped(text: str) -> str:
    """A union inside a list or map, bracketed: ``list of (string or null) or null``."""
    outer = text
    while "(" in outer:  # only an "or" outside brackets makes the text a union
        outer = re.sub(r"\([^()]*\)", "", outer)
    return f"({text})" if " or " in outer else text


def constraints_of(node: Schema) -> str:
    parts = _own_constraints(node)
    for key in ("anyOf", "oneOf"):
        for member in node.get(key, []):
            parts += [p for p in _own_constraints(member) if p not in parts]
    return "; ".join(parts)


def _own_constraints(node: Schema) -> list[str]:
    parts: list[str] = []
    bounds = [
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ]
    numeric = [f"{sign} {_number(node[key])}" for key, sign in bounds if key in node]
    if numeric:
        parts.append(", ".join(numeric))
    parts += _sized(node, "minLength", "maxLength", "chars")
    parts += _sized(node, "minItems", "maxItems", "items")
    parts += _sized(node, "minProperties", "maxProperties", "entries")
    if "pattern" in node:
        parts.append(f"`{node['pattern']}`")
    names = node.get("propertyNames", {})
    if "pattern" in names:
        parts.append(f"keys `{names['pattern']}`")
    items = node.get("items")
    if isinstance(items, dict) and (inner := _own_constraints(items)):
        parts.append("each: " + ", ".join(inner))
    for key_pattern in node.get("patternProperties", {}):
        parts.append(f"keys `{key_pattern}`")
    values = _map_values(node)
    if values and (inner := _own_constraints(values)):
        parts.append("values " + ", ".join(inner))
    return parts


def _map_values(node: Schema) -> Schema:
    """The schema of a map's values (``dict[K, V]``: additional or pattern properties)."""
    values = node.get("additionalProperties")
    if isinstance(values, dict) and values:
        return values
    patterns = list(node.get("patternProperties", {}).values())
    return dict(patterns[0]) if patterns else {}


def _sized(node: Schema, low: str, high: str, unit: str) -> list[str]:
    if low in node and high in node:
        return [f"{_number(node[low])} to {_number(node[high])} {unit}"]
    if high in node:
        return [f"≤ {_number(node[high])} {unit}"]
    if low in node:
        return [f"≥ {_number(node[low])} {unit}"]
    return []


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _literal(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _is_secret_type(info: FieldInfo) -> bool:
    return SecretStr in _flatten(info.annotation)


def _flatten(annotation: Any) -> set[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return {annotation}
    found: set[Any] = set()
    for arg in args:
        found |= _flatten(arg)
    return found


def _default(info: FieldInfo, *, hidden: bool) -> str:  # noqa: PLR0911 (one per kind)
    if info.is_required():
        return "required"
    if hidden:
        return "unset" if info.default is None else "(secret, not shown)"
    factory = info.default_factory
    if factory is not None:
        if factory in (list, tuple):
            return "`[]`"
        if factory is dict:
            return "`{}`"
        return "now" if getattr(factory, "__name__", "") == "utc_now" else "computed"
    value = info.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "its defaults"
    if value == ():
        return "`[]`"
    if isinstance(value, Enum):
        value = value.value
    if value == "":
        return "empty"
    if isinstance(value, str | int | float | bool):
        return f"`{json.dumps(value) if isinstance(value, bool) else value}`"
    return f"`{value}`"


def field_comment(model: type[BaseModel], name: str) -> str:
    """The comment block directly above ``name``'s declaration in the class that declares it."""
    for klass in model.__mro__:
        if name in inspect.get_annotations(klass):
            return _class_comments(klass).get(name, "")
    return ""


@cache
def _class_comments(klass: type) -> dict[str, str]:
    try:
        lines, _ = inspect.getsourcelines(klass)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent("".join(lines))
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    rows = source.splitlines()
    comments: dict[str, str] = {}
    for stmt in body.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            block: list[str] = []
            line = stmt.lineno - 2  # the line above, 0-based
            while line >= 0 and rows[line].strip().startswith("#"):
                block.insert(0, rows[line].strip().lstrip("#").strip())
                line -= 1
            comments[stmt.target.id] = " ".join(block)
    return comments
