"""A throwaway ``redis-server`` for the local stack.

Redis is only a cache in Flywheel (everything in it is rebuilt from Kafka), so it
runs without persistence: no RDB snapshots, no AOF, nothing to clean up or migrate.
"""

from __future__ import annotations

import shutil

from flywheel.errors import ConfigError
from flywheel_cli.config import LOOPBACK, StackConfig

__all__ = ["redis_argv"]


def redis_argv(config: StackConfig, *, redis_server: str | None = None) -> list[str]:
    """The command line for the stack's redis-server (foreground; the CLI owns the pid)."""
    binary = redis_server or shutil.which("redis-server")
    if binary is None:
        raise ConfigError("redis-server is not installed: run `make install`")
    return [
        binary,
        "--bind", LOOPBACK,
        "--port", str(config.redis_port),
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(config.redis_dir),
        # Empty logfile = stdout, which the CLI already sends to the state folder.
        "--logfile", "",
    ]  # fmt: skip
