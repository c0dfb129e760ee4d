"""Entry point for ``flywheel-demo`` (filled in by the demo work)."""

from __future__ import annotations


def main() -> int:
    raise SystemExit("flywheel-demo: not built yet")
