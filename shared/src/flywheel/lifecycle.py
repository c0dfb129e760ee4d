"""Running a service: one ``main()``, SIGTERM/SIGINT call ``stop()``, bounded start-up waits.

A service implements :class:`Service` (``start``/``run``/``stop``) and hands it to
:func:`run_service`. ``run`` returns when the service is done or when ``stop`` has been
requested; ``stop`` must flush whatever is in flight before returning so that a
SIGTERM never loses accepted work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Protocol

__all__ = ["Service", "run_service"]

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


async def _serve(service: Service) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await service.start()
    log.info("service started", extra={"service_name": service.name})
    runner = asyncio.create_task(service.run(), name=f"{service.name}.run")
    waiter = asyncio.create_task(stopping.wait(), name=f"{service.name}.signal")
    try:
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # re-raise a crash so the process exits non-zero
    finally:
        log.info("service stopping", extra={"service_name": service.name})
        await service.stop()
        for task in (runner, waiter):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("service stopped", extra={"service_name": service.name})


def run_service(service: Service) -> None:
    """Run ``service`` until it finishes or a SIGTERM/SIGINT arrives."""
    asyncio.run(_serve(service))
