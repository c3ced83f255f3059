"""Output of diagnostics for people and machines: text (with a code frame), grouped, JSON,
JSON lines, SARIF 2.1.0, GitHub annotations, GitLab code quality and JUnit XML.

Generic over :class:`~traineval.diagnostics.Diagnostic`: a :class:`Finding` adds an
optional file location (the linter's) to any diagnostic, so runtime findings (whose
``where`` is a module path) print through the same functions.

>>> from traineval.catalog import make
>>> f = Finding(make("TE001", expr="model.eval", method="eval"), path="a.py", line=3, col=1)
>>> render([f], "json").count('"TE001"')
1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from traineval.lint.report import ci, machine, text
from traineval.lint.report.finding import Finding

FORMATS = ("text", "json", "json-lines", "sarif", "github", "gitlab", "junit", "grouped")
Format = Literal["text", "json", "json-lines", "sarif", "github", "gitlab", "junit", "grouped"]


def render(findings: Sequence[Finding], fmt: str, *, color: bool = False, statistics: bool = False,
           fixed: int = 0, files: int | None = None, quiet: bool = False,
           sources: Mapping[str, bytes] | None = None) -> str:
    """The findings in format ``fmt``.

    Args:
        findings: what to report.
        fmt: one of :data:`FORMATS`.
        color: ANSI colours (text and grouped only).
        statistics: counts per code instead of each finding (text only).
        fixed: how many fixes were applied (for the summary line).
        files: how many files were linted (for the summary line).
        quiet: no summary line and no code frames.
        sources: file bytes to draw code frames from instead of reading the files (stdin).

    Returns:
        The report text (no trailing newline).

    >>> from traineval.lint import lint_source
    >>> print(render(lint_source("model.eval\\n"), "github"))  # doctest: +ELLIPSIS
    ::error file=<string>.py,line=1,col=1,endLine=1,endColumn=11,title=TE001 error::TE001 `model.eval` ...
    """
    if fmt == "text":
        return text.render_text(findings, color=color, statistics=statistics, fixed=fixed, files=files,
                                quiet=quiet, sources=sources)
    if fmt == "grouped":
        return text.render_grouped(findings, color=color, fixed=fixed, files=files, quiet=quiet)
    if fmt == "json":
        return machine.render_json(findings)
    if fmt == "json-lines":
        return ci.render_json_lines(findings)
    if fmt == "sarif":
        return machine.render_sarif(findings)
    if fmt == "github":
        return machine.render_github(findings)
    if fmt == "gitlab":
        return ci.render_gitlab(findings)
    if fmt == "junit":
        return ci.render_junit(findings)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "Finding", "Format", "render"]
