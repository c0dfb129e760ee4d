"""Generated reference sections of README.md and the JSON Schemas under docs/schemas/.

``make docs`` (``python -m tools.docgen``) rewrites them from the code: the event
models, the Settings classes, the CLI's argparse parser and the services' OpenAPI
documents. ``python -m tools.docgen --check`` (and tests/unit/docs) fail when the
committed text differs from what the code generates now.
"""

from __future__ import annotations

from pathlib import Path

from tools.docgen.cli import render_cli
from tools.docgen.http import apps, openapi_documents, render_http_api
from tools.docgen.markdown import splice_regions
from tools.docgen.schemas import json_schemas, render_schemas, render_topics
from tools.docgen.settings import render_configuration

__all__ = ["ROOT", "expected_files", "leftover_files", "regions", "stale_files"]

ROOT = Path(__file__).resolve().parents[2]
README = "README.md"
SCHEMA_DIR = "docs/schemas"


def regions(root: Path = ROOT) -> dict[str, str]:
    """The body of every generated README region, by marker name."""
    built = apps()
    return {
        "topics": render_topics(),
        "event-schemas": render_schemas(),
        "http-api": render_http_api(built),
        "cli": render_cli(),
        "configuration": render_configuration(root),
    }


def expected_files(root: Path = ROOT) -> dict[Path, str]:
    """Every file the generator owns, with the content it should have now."""
    readme = root / README
    files = {readme: splice_regions(readme.read_text(encoding="utf-8"), regions(root))}
    schemas = {**json_schemas(), **openapi_documents(apps())}
    files.update({root / SCHEMA_DIR / name: text for name, text in sorted(schemas.items())})
    return files


def leftover_files(expected: dict[Path, str], root: Path = ROOT) -> list[Path]:
    """Schema files of records or services that no longer exist."""
    return sorted(p for p in (root / SCHEMA_DIR).glob("*.json") if p not in expected)


def stale_files(root: Path = ROOT, expected: dict[Path, str] | None = None) -> list[Path]:
    """Files whose content differs from what the code generates, is missing, or is extra."""
    expected = expected_files(root) if expected is None else expected
    stale = [
        path
        for path, text in expected.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    return stale + leftover_files(expected, root)
