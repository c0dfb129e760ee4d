from __future__ import annotations

import stream_ingest


def test_public_surface_is_pinned() -> None:
    assert sorted(stream_ingest.__all__) == [
        "DEDUP_CHANGELOG",
        "DedupWindow",
        "EventValidator",
        "Flush",
        "PartitionState",
        "Rejection",
        "Settings",
        "StreamIngest",
        "TaskBuffer",
    ]
    for name in stream_ingest.__all__:
        assert getattr(stream_ingest, name) is not None
