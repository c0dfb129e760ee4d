"""Is there a Docker engine to run testcontainers against?

The docker *client* is installed on machines that have no engine, so ``which docker``
proves nothing: ask the daemon itself, with a short timeout so a hung socket cannot
stall a test session.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

__all__ = ["docker_engine_available"]

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def docker_engine_available(*, timeout_s: float = 5.0, run: Runner = subprocess.run) -> bool:
    """True when ``docker info`` reaches a running engine within ``timeout_s``.

    ``docker info`` honours DOCKER_HOST and the current docker context, as
    testcontainers does, so the answer matches what testcontainers would find.
    """
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())
