"""A manual-commit consumer run as a separate process so a test can SIGKILL it.

It appends each record's event id to a sink file, fsyncs, and only then commits the
offsets: the pattern every Flywheel consumer follows ("commit after the work is
durable"). Usage: python -m tests.integration.shared._audit_consumer BOOTSTRAP TOPIC GROUP SINK
"""

from __future__ import annotations

import asyncio
import os
import sys

from flywheel import serde
from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig, commit_processed, make_consumer


async def main(bootstrap: str, topic: str, group: str, sink_path: str) -> None:
    consumer = make_consumer(
        KafkaConfig(bootstrap_servers=bootstrap), topic, group_id=group, max_poll_records=50
    )
    await consumer.start()
    with open(sink_path, "a", encoding="utf-8") as sink:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            processed = {}
            for tp, records in batches.items():
                for record in records:
                    event = serde.decode(FeedbackEvent, record.value or b"")
                    sink.write(event.event_id + "\n")
                    processed[tp] = record.offset
            sink.flush()
            os.fsync(sink.fileno())
            await commit_processed(consumer, processed)
            # Slow enough that a SIGKILL lands mid-stream, fast enough to finish quickly.
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
