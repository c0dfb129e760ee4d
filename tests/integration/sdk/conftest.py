"""The SDK's integration tests run against the predictor's own test fixtures: a real
predictor on a free port, a private topic namespace and models published like the
trainer does (see tests/integration/predictor/conftest.py)."""

from tests.integration.predictor.conftest import (
    publisher,
    redis_client,
    redis_prefix,
    start_service,
)

__all__ = ["publisher", "redis_client", "redis_prefix", "start_service"]
