"""JSON (de)serialisation of events, with errors that name the failing field.

``decode`` refuses, each with its own :attr:`SerdeError.reason`:

* ``oversized``     - more bytes than the caller allows (checked before parsing);
* ``broken_json``   - not JSON, or not a JSON object;
* ``unknown_schema_version`` - a ``schema_version`` this reader does not know;
* ``non_finite``    - NaN or ±Infinity anywhere;
* ``invalid_field`` - any other schema violation; ``field`` is its dotted path.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from flywheel.errors import EventValidationError, SerdeError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "decode", "encode", "validation_error_message"]

M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_EVENT_BYTES = 64 * 1024


def encode(event: BaseModel) -> bytes:
    """Compact JSON bytes of an event (UTC timestamps as ISO-8601 with ``Z``)."""
    return orjson.dumps(event.model_dump(mode="json", exclude_none=False))


def decode(model: type[M], payload: bytes, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> M:
    """Parse ``payload`` into ``model``; raise :class:`SerdeError` saying exactly why not."""
    if len(payload) > max_bytes:
        raise SerdeError(
            f"payload is {len(payload)} bytes; the limit is {max_bytes}", reason="oversized"
        )
    try:
        # orjson refuses NaN/Infinity literals, so non-finite numbers surface here
        # rather than deep inside a model.
        raw: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        reason = "non_finite" if _mentions_non_finite(payload, text) else "broken_json"
        raise SerdeError(f"not valid JSON: {text}", reason=reason) from exc
    if not isinstance(raw, dict):
        raise SerdeError(f"expected a JSON object, got {type(raw).__name__}", reason="broken_json")
    version = raw.get("schema_version", 1)
    known = model.model_fields.get("schema_version")
    if known is not None and known.default is not None and version != known.default:
        raise EventValidationError(
            f"schema_version {version!r} is not supported by this reader (knows {known.default})",
            field="schema_version",
            reason="unknown_schema_version",
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(first["loc"])
        reason = "non_finite" if "finite" in first["msg"] else "invalid_field"
        raise EventValidationError(f"{field}: {first['msg']}", field=field, reason=reason) from exc


def validation_error_message(exc: Exception) -> str:
    """A one-line message naming the failing field of a pydantic error."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            field = _field_path(err["loc"])
            parts.append(f"{field}: {err['msg']}")
        return "; ".join(parts)
    return str(exc)


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic marks a bad dict *key* with a trailing "[key]"; the key is the field.
    return ".".join(str(part) for part in loc if part != "[key]") or "<root>"


def _mentions_non_finite(payload: bytes, error: str) -> bool:
    # orjson reports NaN/Infinity literals as bare syntax errors and 1e400 as
    # "number is infinity"; both deserve the clearer reason.
    return "infinity" in error.lower() or any(t in payload for t in (b"NaN", b"Infinity"))
