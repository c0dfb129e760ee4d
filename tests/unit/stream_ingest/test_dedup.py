from __future__ import annotations

import pytest

from stream_ingest.dedup import DedupWindow


def test_window_forgets_the_oldest_ids_first() -> None:
    window = DedupWindow(3)
    window.extend(["a", "b", "c", "d"])
    assert "a" not in window
    assert all(e in window for e in "bcd")
    assert len(window) == 3


def test_discard_and_capacity_checks() -> None:
    window = DedupWindow(5)
    window.extend(["a", "b"])
    window.discard(["a", "zz"])
    assert "a" not in window
    assert "b" in window
    with pytest.raises(ValueError, match="capacity"):
        DedupWindow(0)
