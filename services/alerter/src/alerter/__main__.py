"""``python -m alerter``: run the alerter against the configured (default: local) stack."""

from __future__ import annotations

import sys

from alerter.config import Settings
from alerter.routing import default_config, load_config
from alerter.service import AlerterService
from flywheel.errors import ConfigError
from flywheel.lifecycle import run_service
from flywheel.logs import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging("alerter", level=settings.log_level, fmt=settings.log_format)
    try:
        config = (
            load_config(settings.alerter_config_file)
            if settings.alerter_config_file
            else default_config()
        )
    except ConfigError as exc:
        print(f"alerter: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    run_service(AlerterService(settings, config))


if __name__ == "__main__":
    main()
