"""Griffe extension: render ``>>>`` doctest examples in docstrings as ``pycon`` code blocks.

traineval's docstrings use plain doctest examples (they run in the test suite); Markdown
would otherwise read ``>>>`` as nested block quotes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def fence_doctests(text: str) -> str:
    """Wrap each run of ``>>>``/``...`` lines and their output in a fenced pycon block."""
    out: list[str] = []
    in_block = False
    indent = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            if not in_block:
                out.append("```pycon")
                in_block = True
                indent = line[: len(line) - len(line.lstrip())]
            out.append(stripped)
        elif in_block and stripped == "":
            out += ["```", ""]
            in_block = False
        elif in_block:  # continuation or expected output: keep its indentation relative to >>>
            out.append(line[len(indent):] if line.startswith(indent) else stripped)
        else:
            out.append(line)
    if in_block:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence doctest examples of every object's docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # type: ignore[override]
        if obj.docstring is not None:
            # Sphinx roles (:class:`x`) read as plain code in Markdown
            obj.docstring.value = fence_doctests(_ROLE.sub(r"`\1`", obj.docstring.value))
