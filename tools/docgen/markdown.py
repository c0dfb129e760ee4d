"""Markdown building blocks and the marked regions of README.md the generator owns.

A region is everything between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->``; the text around it is hand-written and left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["cell", "code", "find_regions", "prose", "splice_regions", "table"]

_REGION = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[a-z0-9-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)
# Only "<" opening something tag-like is eaten by Markdown ("< 1" is left as it is).
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def code(text: object) -> str:
    """``text`` as inline code; backticks inside are doubled-fenced."""
    value = str(text)
    return f"`` {value} ``" if "`" in value else f"`{value}`"


def prose(text: str) -> str:
    """Text from the code as Markdown: ``<stem>`` outside code spans would be eaten as an
    HTML tag, so a tag-like ``<`` there is escaped."""
    parts = re.split(r"(`+[^`]*`+)", text)
    return "".join(p if p.startswith("`") else _TAG_START.sub("&lt;", p) for p in parts)


def cell(text: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped (also inside code spans)."""
    return prose(" ".join(text.split())).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) if c else "" for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def find_regions(text: str) -> dict[str, str]:
    """The body of every generated region in ``text``, by name."""
    return {m["name"]: m["body"] for m in _REGION.finditer(text)}


def splice_regions(text: str, bodies: Mapping[str, str]) -> str:
    """``text`` with each named region's body replaced.

    Every region in ``bodies`` must be marked in ``text`` exactly once, so a
    renamed or deleted marker is an error rather than a silently skipped section.
    """
    found = [m["name"] for m in _REGION.finditer(text)]
    for name in bodies:
        if found.count(name) != 1:
            raise ValueError(
                f"README needs exactly one '<!-- BEGIN GENERATED: {name} -->' ... "
                f"'<!-- END GENERATED: {name} -->' pair, found {found.count(name)}"
            )

    def replace(match: re.Match[str]) -> str:
        body = bodies.get(match["name"])
        if body is None:
            return match[0]
        return match["begin"] + body.rstrip("\n") + "\n" + match["end"]

    return _REGION.sub(replace, text)
