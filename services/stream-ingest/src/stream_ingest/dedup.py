"""Remembering recently accepted event ids, per source partition, in bounded memory.

The window is rebuilt after a crash from the partition's dedup changelog (see
changelog.py), which is written in the same Kafka transaction as the batches and the
consumer offsets: the restored window holds exactly the ids whose events were counted.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DedupWindow"]


class DedupWindow:
    """The last ``capacity`` event ids seen, oldest evicted first (insertion-ordered dict)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        ids = self._ids
        ids[event_id] = None
        if len(ids) > self.capacity:
            # dicts iterate in insertion order: the first key is the oldest id.
            del ids[next(iter(ids))]

    def extend(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            self.add(event_id)

    def discard(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            self._ids.pop(event_id, None)
