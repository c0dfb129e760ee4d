"""Silences and inhibition: the two ways an alert is muted before it reaches a receiver."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from alerter.matchers import Matcher, match_labels, parse_matcher
from alerter.routing import InhibitRule
from alerter.state import Silence
from flywheel.events import Alert, AlertState

__all__ = ["Inhibitor", "SilenceStore"]


class SilenceStore:
    """Silences by id; expired ones are kept (for ``silences`` listings) until forgotten."""

    def __init__(self) -> None:
        self._silences: dict[str, tuple[Silence, tuple[Matcher, ...]]] = {}

    def put(self, silence: Silence) -> None:
        matchers = tuple(parse_matcher(m) for m in silence.matchers)
        self._silences[silence.id] = (silence, matchers)

    def get(self, silence_id: str) -> Silence | None:
        entry = self._silences.get(silence_id)
        return entry[0] if entry else None

    def remove(self, silence_id: str) -> None:
        self._silences.pop(silence_id, None)

    def all(self) -> list[Silence]:
        return sorted((s for s, _ in self._silences.values()), key=lambda s: s.created_at)

    def silenced_by(self, alert: Alert, now: datetime) -> list[str]:
        labels = match_labels(alert)
        return [
            silence.id
            for silence, matchers in self._silences.values()
            if silence.active(now) and all(m.matches(labels) for m in matchers)
        ]


class Inhibitor:
    """Alertmanager's inhibition: a firing source mutes matching targets with equal labels."""

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self._rules = list(rules)

    def inhibited(self, target: Alert, alerts: Iterable[Alert]) -> bool:
        if not self._rules or target.state is not AlertState.FIRING:
            return False
        target_labels = match_labels(target)
        candidates = [a for a in alerts if a.state is AlertState.FIRING]
        for rule in self._rules:
            if not all(m.matches(target_labels) for m in rule.target_matchers):
                continue
            for source in candidates:
                if source.fingerprint == target.fingerprint:
                    continue  # an alert never inhibits itself
                source_labels = match_labels(source)
                if all(m.matches(source_labels) for m in rule.source_matchers) and all(
                    source_labels.get(n, "") == target_labels.get(n, "") for n in rule.equal
                ):
                    return True
        return False
