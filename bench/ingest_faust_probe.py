"""Probe: can faust-streaming run the ingest loop exactly once against our broker?

Not the service. A minimal faust app with the settings the faust docs call safe
(``processing_guarantee="exactly_once"``, agent ``concurrency=1``, in-memory store) that
reads ``feedback.events``, groups ``stream.take`` batches per task and sends each group to
``training.batches``. ``bench/ingest_faust_audit.py`` SIGKILLs it mid-stream and audits
the result; the evidence goes in ``docs/stream-ingest.md``.

Run: ``FLYWHEEL_TOPIC_PREFIX=t1234. python bench/ingest_faust_probe.py worker -l warn``
"""

from __future__ import annotations

import os
from collections import defaultdict

import faust
import orjson

from flywheel.topics import FEEDBACK_DLQ, FEEDBACK_EVENTS, TRAINING_BATCHES

PREFIX = os.environ.get("FLYWHEEL_TOPIC_PREFIX", "")
BROKER = os.environ.get("FLYWHEEL_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")

app = faust.App(
    f"{PREFIX}faust-probe",
    broker=f"kafka://{BROKER}",
    processing_guarantee="exactly_once",
    store="memory://",
    web_enabled=False,
    topic_partitions=FEEDBACK_EVENTS.partitions,
    datadir=f"/tmp/{PREFIX}faust-probe-data",
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
)
events_topic = app.topic(
    PREFIX + FEEDBACK_EVENTS.name, key_serializer="raw", value_serializer="raw"
)
dlq_topic = app.topic(PREFIX + FEEDBACK_DLQ.name, key_serializer="raw", value_serializer="raw")
batches_topic = app.topic(
    PREFIX + TRAINING_BATCHES.name, key_serializer="raw", value_serializer="raw"
)


@app.agent(events_topic, concurrency=1)
async def ingest(stream: faust.StreamT[bytes]) -> None:
    async for values in stream.take(500, within=1.0):
        by_task: dict[str, list[str]] = defaultdict(list)
        for raw in values:
            event = orjson.loads(raw)
            if event["features"]["x"] % 10 == 0:
                # Stands in for an invalid event: it must reach the DLQ exactly once.
                dlq = {"task": event["task"], "event_ids": [event["event_id"]]}
                await dlq_topic.send(key=event["task"].encode(), value=orjson.dumps(dlq))
                continue
            by_task[event["task"]].append(event["event_id"])
        for task, ids in by_task.items():
            await batches_topic.send(
                key=task.encode(), value=orjson.dumps({"task": task, "event_ids": ids})
            )


if __name__ == "__main__":
    app.main()
