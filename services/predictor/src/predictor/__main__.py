"""``python -m predictor``: serve predictions on FLYWHEEL_PREDICTOR_PORT (default 18080)."""

from __future__ import annotations

import asyncio

import uvloop

from flywheel.lifecycle import run_service
from flywheel.logs import configure_logging
from predictor.config import Settings
from predictor.service import PredictorService


def main() -> None:
    settings = Settings()
    configure_logging("predictor", level=settings.log_level, fmt=settings.log_format)
    # uvloop roughly halves the event loop's share of each request.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_service(PredictorService(settings))


if __name__ == "__main__":
    main()
