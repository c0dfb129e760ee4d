"""stream-ingest: validated, de-duplicated, exactly-once batches from ``feedback.events``.

Run it with ``python -m stream_ingest``; the pieces are importable for tests and tools.
"""

from stream_ingest.buffers import Flush, PartitionState, TaskBuffer
from stream_ingest.changelog import DEDUP_CHANGELOG
from stream_ingest.config import Settings
from stream_ingest.dedup import DedupWindow
from stream_ingest.service import StreamIngest
from stream_ingest.validation import EventValidator, Rejection

__all__ = [
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
