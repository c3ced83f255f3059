"""Output of diagnostics for people and machines: text, JSON, SARIF 2.1.0, GitHub annotations.

Generic over :class:`~traineval.diagnostics.Diagnostic`: a :class:`Finding` adds an
optional file location (the linter's) to any diagnostic, so runtime findings (whose
``where`` is a module path) print through the same functions.

>>> from traineval.catalog import make
>>> f = Finding(make("TE001", expr="model.eval", method="eval"), path="a.py", line=3, col=1)
>>> render([f], "json").count('"TE001"')
1
"""

from __future__ import annotations

from collections.abc import Sequence

from traineval.lint.report import machine, text
from traineval.lint.report.finding import Finding

FORMATS = ("text", "json", "sarif", "github")


def render(findings: Sequence[Finding], fmt: str, *, color: bool = False, statistics: bool = False,
           fixed: int = 0, files: int | None = None) -> str:
    """The findings in format ``fmt`` (``text``, ``json``, ``sarif`` or ``github``).

    >>> from traineval.lint import lint_source
    >>> print(render(lint_source("model.eval\\n"), "github"))  # doctest: +ELLIPSIS
    ::error file=<string>.py,line=1,col=1,endLine=1,endColumn=11,title=TE001 error::TE001 `model.eval` ...
    """
    if fmt == "text":
        return text.render_text(findings, color=color, statistics=statistics, fixed=fixed, files=files)
    if fmt == "json":
        return machine.render_json(findings)
    if fmt == "sarif":
        return machine.render_sarif(findings)
    if fmt == "github":
        return machine.render_github(findings)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "Finding", "render"]
