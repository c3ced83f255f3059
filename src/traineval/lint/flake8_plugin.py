"""flake8 plugin: ``flake8 --select TE`` runs the default-enabled TE0xx rules on each file.

flake8 hands over one file at a time, so calls are followed within that file only (the
``traineval lint`` command follows them across the whole project). flake8 applies its own
``# noqa`` handling and ``--select``/``--ignore``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from traineval import __version__


class Plugin:
    """The flake8 entry point (``[project.entry-points."flake8.extension"] TE = ...``)."""

    name = "traineval"
    version = __version__

    def __init__(self, tree: ast.AST, filename: str = "stdin", lines: list[str] | None = None) -> None:
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type[Any]]]:
        """Yield ``(line, col, "TE0xx message", type)`` for every finding."""
        from traineval.lint.config import LintConfig
        from traineval.lint.engine import analyze_file, assemble
        from traineval.lint.noqa import Suppressions

        if self.lines is not None:
            data = "".join(self.lines).encode("utf-8")
        else:
            with open(self.filename, "rb") as fh:
                data = fh.read()
        result = analyze_file(self.filename, data)
        result.suppressions = Suppressions()  # flake8 handles noqa itself
        for f in assemble([result], LintConfig()).findings:
            if f.code == "TE099":
                continue  # flake8 reports syntax errors as E999
            yield f.line, max(f.col - 1, 0), f"{f.code} {f.diagnostic.message}", type(self)
