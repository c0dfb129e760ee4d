"""``python -m stream_ingest``: run stream-ingest against the configured cluster."""

from __future__ import annotations

from flywheel.lifecycle import run_service
from flywheel.logs import configure_logging
from stream_ingest.config import Settings
from stream_ingest.service import StreamIngest


def main() -> None:
    settings = Settings()
    configure_logging("stream-ingest", level=settings.log_level, fmt=settings.log_format)
    run_service(StreamIngest(settings))


if __name__ == "__main__":
    main()
