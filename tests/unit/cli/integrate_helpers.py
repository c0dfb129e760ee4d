"""Run the tools a client project would run on generated code: ruff, mypy, pytest.

The binaries are the repository's own (.venv), run as subprocesses from the output
directory, so the generated files are checked as files of another project would be
(mypy with no configuration but ``--strict``; ruff with this repository's rules).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["REPO", "TEMPLATES", "lint_and_typecheck", "run_tool"]

REPO = Path(__file__).resolve().parents[3]
TEMPLATES = REPO / "examples" / "tasks"
BIN = Path(sys.executable).parent


def run_tool(args: Sequence[str], cwd: Path, timeout_s: float = 180) -> str:
    """Run ``.venv/bin/<tool> ...`` in ``cwd``; fail with its output unless it exits 0."""
    done = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed in {cwd}:\n{output}"
    return output


def lint_and_typecheck(root: Path) -> None:
    """ruff check (this repository's rules, and as a client project classifies the
    imports), ruff format --check and mypy --strict over every .py under ``root``."""
    config = str(REPO / "pyproject.toml")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
    assert files, f"nothing generated under {root}"
    run_tool(["ruff", "check", "--no-cache", "--config", config, *files], root)
    # In a client project Flywheel is third-party and the generated module its own:
    # the import blocks must be sorted under that classification too.
    modules = sorted({Path(f).stem for f in files if not Path(f).name.startswith("test_")})
    client_project = [
        "--config",
        f"lint.isort.known-first-party={modules!r}".replace("'", '"'),
        "--config",
        'lint.isort.known-third-party=["flywheel", "flywheel_client"]',
    ]
    run_tool(["ruff", "check", "--no-cache", "--config", config, *client_project, *files], root)
    # The same layout at this repository's line length (100) and ruff's default (88).
    for length in ("100", "88"):
        line_length = ["--config", config, "--config", f"line-length={length}"]
        run_tool(["ruff", "format", "--no-cache", "--check", *line_length, *files], root)
    run_tool(["mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null", *files], root)
