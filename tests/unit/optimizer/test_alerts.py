"""The alert book emits transitions only."""

from __future__ import annotations

from flywheel.events import AlertSeverity, AlertState, alert_fingerprint
from optimizer.alerts import AlertBook
from tests.unit.optimizer.helpers import T0, at


def test_fire_twice_emits_once_and_resolve_carries_the_same_fingerprint() -> None:
    book = AlertBook()
    labels = {"task": "t"}
    first = book.fire("X", severity=AlertSeverity.WARNING, labels=labels, annotations={}, at=at(T0))
    again = book.fire(
        "X", severity=AlertSeverity.WARNING, labels=labels, annotations={}, at=at(T0 + 1)
    )
    assert first is not None
    assert again is None
    assert first.fingerprint == alert_fingerprint("X", labels)
    assert book.resolve(first.fingerprint, at=at(T0 + 2)) is not None
    assert book.resolve(first.fingerprint, at=at(T0 + 3)) is None
    states = [a.state for a in book.drain()]
    assert states == [AlertState.FIRING, AlertState.RESOLVED]
    assert book.drain() == []


def test_requeue_keeps_order() -> None:
    book = AlertBook()
    a = book.fire("A", severity=AlertSeverity.INFO, labels={}, annotations={}, at=at(T0))
    pending = book.drain()
    book.fire("B", severity=AlertSeverity.INFO, labels={}, annotations={}, at=at(T0))
    book.requeue(pending)
    assert [x.name for x in book.drain()] == ["A", "B"]
    assert a is not None


def test_restore_ignores_other_sources() -> None:
    book = AlertBook()
    other = AlertBook()
    alert = other.fire("A", severity=AlertSeverity.INFO, labels={}, annotations={}, at=at(T0))
    assert alert is not None
    foreign = alert.model_copy(update={"source": "trainer"})
    assert book.restore([foreign]) == 0
    assert book.restore([alert]) == 1
    assert book.is_firing(alert.fingerprint)
