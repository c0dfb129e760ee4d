"""``python -m optimizer``: run the optimizer against the configured stack."""

from __future__ import annotations

from flywheel.lifecycle import run_service
from flywheel.logs import configure_logging
from optimizer.config import Settings
from optimizer.service import OptimizerService


def main() -> None:
    settings = Settings()
    configure_logging("optimizer", level=settings.log_level, fmt=settings.log_format)
    run_service(OptimizerService(settings))


if __name__ == "__main__":
    main()
