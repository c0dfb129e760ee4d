"""Optional API keys, stored hashed and compared in constant time, scoped to tasks.

The key file (``FLYWHEEL_PREDICTOR_API_KEYS_FILE``) is JSON::

    {"keys": [{"name": "daisy-chain", "sha256": "<hex of sha256(key)>",
               "tasks": ["daisy-chain.*"]}]}

Keys are random tokens of at least 128 bits (``python -m predictor.auth`` makes one),
so a plain sha256 is enough to make a leaked file useless; a slow password hash
(scrypt, argon2) would protect low-entropy secrets, which these are not, and would
cost milliseconds on every request. Every stored hash is compared with
:func:`hmac.compare_digest`, without stopping at the first match.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import ConfigError
from flywheel.serde import validation_error_message

__all__ = ["ApiKey", "ApiKeyring", "AuthError", "hash_key"]

MIN_KEY_LENGTH = 20


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def body(self) -> dict[str, str | None]:
        """The JSON error body (same shape as every other predictor error)."""
        return {"detail": str(self), "field": None, "reason": "unauthorized"}


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tasks: tuple[str, ...] = ("*",)


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[_KeyEntry] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: bytes
    tasks: tuple[str, ...]

    def allows(self, task: str) -> bool:
        return any(fnmatch.fnmatchcase(task, pattern) for pattern in self.tasks)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyring:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @classmethod
    def open(cls) -> ApiKeyring:
        return cls([])

    @classmethod
    def from_file(cls, path: Path) -> ApiKeyring:
        try:
            parsed = _KeyFile.model_validate_json(path.read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{path}: {validation_error_message(exc)}") from exc
        return cls([ApiKey(e.name, bytes.fromhex(e.sha256), e.tasks) for e in parsed.keys])

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key ``presented`` matches; None when keys are off. 401 if unknown."""
        if not self._keys:
            return None
        if not presented:
            raise AuthError(401, "an API key is required (Authorization: Bearer <key>)")
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: ApiKey | None = None
        for key in self._keys:
            # No early exit: the time taken does not say which entry matched.
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise AuthError(401, "unknown API key")
        return found

    def authorize(self, presented: str | None, task: str) -> None:
        """Raise :class:`AuthError` 401 (no/unknown key) or 403 (key not scoped to ``task``)."""
        key = self.identify(presented)
        if key is not None and not key.allows(task):
            raise AuthError(403, f"API key {key.name!r} is not allowed to use task {task!r}")

    def visible(self, presented: str | None, tasks: list[str]) -> list[str]:
        key = self.identify(presented)
        return tasks if key is None else [t for t in tasks if key.allows(t)]


def main() -> None:
    """Print a new random API key and the sha256 to put in the key file."""
    key = secrets.token_urlsafe(32)
    sys.stdout.write(f"key:    {key}\nsha256: {hash_key(key)}\n")


if __name__ == "__main__":
    main()
