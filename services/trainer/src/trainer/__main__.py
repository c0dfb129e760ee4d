"""``python -m trainer``: run the trainer against the configured cluster."""

from __future__ import annotations

from flywheel.lifecycle import run_service
from flywheel.logs import configure_logging
from trainer.config import Settings
from trainer.service import TrainerService


def main() -> None:
    settings = Settings()
    configure_logging("trainer", level=settings.log_level, fmt=settings.log_format)
    run_service(TrainerService(settings))


if __name__ == "__main__":
    main()
