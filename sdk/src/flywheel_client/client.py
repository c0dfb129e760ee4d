"""``FlywheelClient``: the blocking twin of :class:`AsyncFlywheelClient`.

It runs one :class:`AsyncFlywheelClient` on a private event loop in a daemon thread,
so both clients share one implementation of timeouts, retries, fallbacks and the
feedback producer (aiokafka is asyncio-only). The thread starts on first use and
stops in :meth:`close`; calls are safe from several threads at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from flywheel.events import FeedbackEvent
from flywheel.kafka import KafkaConfig
from flywheel_client.async_client import DEFAULT_BASE_URL, AsyncFlywheelClient
from flywheel_client.models import Fallback, Features, PredictionBatch, PredictionResult
from flywheel_client.retry import RetryPolicy

__all__ = ["FlywheelClient"]

T = TypeVar("T")


class FlywheelClient:
    """Predict and send feedback from ordinary (blocking) code; same arguments as the
    async client. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout_s: float = 1.0,
        retry: RetryPolicy | None = None,
        kafka: KafkaConfig | str | None = None,
        feedback_timeout_s: float = 10.0,
        source: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        endpoint_cooldown_s: float = 1.0,
    ) -> None:
        self._client = AsyncFlywheelClient(
            base_url,
            api_key=api_key,
            timeout_s=timeout_s,
            retry=retry,
            kafka=kafka,
            feedback_timeout_s=feedback_timeout_s,
            source=source,
            transport=transport,
            endpoint_cooldown_s=endpoint_cooldown_s,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False

    @property
    def timeout_s(self) -> float:
        return self._client.timeout_s

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._guard:
            if self._closed:
                coro.close()
                raise RuntimeError("FlywheelClient is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="flywheel-client", daemon=True
                )
                self._thread.start()
            loop = self._loop
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def start(self) -> None:
        """Connect the feedback producer now (optional)."""
        self._run(self._client.start())

    def close(self) -> None:
        with self._guard:
            if self._closed:
                return
            loop, thread = self._loop, self._thread
        try:
            if loop is not None:
                asyncio.run_coroutine_threadsafe(self._client.close(), loop).result()
            else:
                asyncio.run(self._client.close())
        finally:
            with self._guard:
                self._closed = True
            if loop is not None and thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                thread.join()
                loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def predict(
        self,
        task: str,
        features: Features,
        *,
        entity_id: str | None = None,
        explain: bool = False,
        fallback: Fallback | None = None,
        timeout_s: float | None = None,
    ) -> PredictionResult:
        return self._run(
            self._client.predict(
                task,
                features,
                entity_id=entity_id,
                explain=explain,
                fallback=fallback,
                timeout_s=timeout_s,
            )
        )

    def predict_many(
        self,
        task: str,
        rows: Sequence[Features],
        *,
        entity_id: str | None = None,
        explain: bool = False,
        fallback: Fallback | None = None,
        timeout_s: float | None = None,
    ) -> PredictionBatch:
        return self._run(
            self._client.predict_many(
                task,
                rows,
                entity_id=entity_id,
                explain=explain,
                fallback=fallback,
                timeout_s=timeout_s,
            )
        )

    def publish_feedback(
        self,
        task: str,
        features: Features,
        label: Any,
        *,
        prediction: PredictionResult | None = None,
        prediction_id: str | None = None,
        event_id: str | None = None,
        entity_id: str | None = None,
        source: str | None = None,
    ) -> FeedbackEvent:
        return self._run(
            self._client.publish_feedback(
                task,
                features,
                label,
                prediction=prediction,
                prediction_id=prediction_id,
                event_id=event_id,
                entity_id=entity_id,
                source=source,
            )
        )
