"""Label matchers in Alertmanager's syntax: ``a="v"``, ``a!="v"``, ``a=~"re"``, ``a!~"re"``.

Regexes are fully anchored, as in Alertmanager. The labels an alert is matched on are
its own labels plus ``alertname`` and ``severity`` (see :func:`match_labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from flywheel.events import Alert

__all__ = ["Matcher", "match_labels", "parse_matcher"]

Op = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(
    r"""^\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^"'\s][^\s]*|)\s*$"""
)


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; ``ValueError`` says what is wrong with it."""
    m = _MATCHER.match(text)
    if m is None:
        raise ValueError(f"not a matcher: {text!r} (expected name=value, !=, =~ or !~)")
    raw = m.group("value")
    if raw.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", raw[1:-1])
    elif raw.startswith("'"):
        value = raw[1:-1]
    else:
        value = raw
    op: Op = m.group("op")  # type: ignore[assignment]
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex in {text!r}: {exc}") from exc
    return Matcher(m.group("name"), op, value, regex)


def match_labels(alert: Alert) -> dict[str, str]:
    """The label set routes, silences and inhibition rules see for ``alert``."""
    return {**alert.labels, "alertname": alert.name, "severity": alert.severity.value}
