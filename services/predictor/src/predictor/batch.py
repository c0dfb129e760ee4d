"""Offline batches: ``predictions.requests`` -> ``predictions.results``.

Replicas share one consumer group (``predictor_batch_group_id``). Every request gets
exactly one result: the predictions, or the refusal with its reason and field (a bad
request is answered, never dropped). Offsets are committed only after the results
are acknowledged by Kafka, so a crash re-answers rather than loses a request
(at-least-once; ``request_id`` lets the client drop a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from flywheel import serde
from flywheel.errors import FlywheelError, SerdeError, TaskError
from flywheel.events import utc_now
from flywheel.kafka import KafkaConfig, commit_processed, make_consumer
from flywheel.prediction_batches import BatchError, PredictionBatchRequest, PredictionBatchResult
from flywheel.topics import PREDICTIONS_REQUESTS, PREDICTIONS_RESULTS
from predictor.serving import Predictor, Refused

__all__ = ["BatchPredictions"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8 * 1024 * 1024


def _status_of(exc: Refused | FlywheelError) -> int:
    """The HTTP status the same failure would have had: bad input is the caller's
    (4xx); a model that cannot score, or a dependency down, is ours (5xx)."""
    if isinstance(exc, Refused):
        return exc.status
    return 422 if isinstance(exc, SerdeError | TaskError) else 500


class BatchPredictions:
    def __init__(
        self,
        config: KafkaConfig,
        predictor: Predictor,
        producer: AIOKafkaProducer,
        *,
        group_id: str,
    ) -> None:
        self._config = config
        self._predictor = predictor
        self._producer = producer
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        consumer = make_consumer(
            self._config,
            self._config.topic(PREDICTIONS_REQUESTS),
            group_id=self._group_id,
            max_poll_records=50,
        )
        await consumer.start()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="predictions.requests")

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping:
            try:
                await self._poll(consumer)
            except Exception:
                # Nothing after the last commit is lost: read it again from there.
                log.exception("batch predictions failed; resuming from the committed offsets")
                await asyncio.sleep(1.0)
                await consumer.seek_to_committed()

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=500)
        processed: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for record in records:
                result = await self.answer(record)
                await self._producer.send_and_wait(
                    self._config.topic(PREDICTIONS_RESULTS),
                    serde.encode(result),
                    key=result.request_id.encode(),
                )
                processed[tp] = record.offset
        await commit_processed(consumer, processed)

    async def answer(self, record: ConsumerRecord[bytes, bytes]) -> PredictionBatchResult:
        where = f"{record.topic}:{record.partition}:{record.offset}"
        try:
            request = serde.decode(
                PredictionBatchRequest, record.value or b"", max_bytes=MAX_REQUEST_BYTES
            )
        except SerdeError as exc:
            self._predictor.metrics.batch_requests.labels(exc.reason).inc()
            self._predictor.counts.count(422)
            key = (record.key or b"").decode("utf-8", "replace")[:128]
            return PredictionBatchResult(
                request_id=where,
                task=key,
                error=BatchError(reason=exc.reason, message=str(exc)[:2_000], field=exc.field),
            )
        try:
            answer = await self._predict(request)
        except (Refused, FlywheelError) as exc:
            body: dict[str, Any] = exc.body if isinstance(exc, Refused) else {}
            reason = body.get("reason") or "refused"
            self._predictor.metrics.batch_requests.labels(reason).inc()
            self._predictor.counts.count(_status_of(exc))
            return PredictionBatchResult(
                request_id=request.request_id,
                task=request.task,
                error=BatchError(reason=reason, message=str(exc)[:2_000], field=body.get("field")),
            )
        self._predictor.metrics.batch_requests.labels("ok").inc()
        self._predictor.counts.count(200)
        return PredictionBatchResult(
            request_id=request.request_id,
            task=request.task,
            model_version=answer["model_version"],
            predictions=answer["predictions"],
            answered_at=utc_now(),
        )

    async def _predict(self, request: PredictionBatchRequest) -> dict[str, Any]:
        predictor = self._predictor
        model = predictor.model_for(request.task, None)
        started = time.perf_counter()
        entity_ids = request.entity_ids
        if entity_ids is None:
            return await predictor.predict_rows(
                model, request.rows, entity_id=None, explain=request.explain, started=started
            )
        if len(entity_ids) != len(request.rows):
            raise Refused(
                422,
                f"entity_ids: {len(entity_ids)} ids for {len(request.rows)} rows",
                "entity_ids",
                "invalid_field",
            )
        # Rows naming different entities are joined one by one, then scored together.
        predictions = []
        for i, (row, entity) in enumerate(zip(request.rows, entity_ids, strict=True)):
            try:
                answer = await predictor.predict_rows(
                    model, [row], entity_id=entity, explain=request.explain, started=started
                )
            except Refused as exc:
                if exc.body.get("field"):
                    exc.body["field"] = str(exc.body["field"]).replace("rows.0", f"rows.{i}", 1)
                raise
            predictions.extend(answer["predictions"])
        return {"model_version": model.version, "predictions": predictions}

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            # The loop finishes the records it holds (results sent, offsets committed).
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
