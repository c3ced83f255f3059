"""What ``--fix``, ``--diff`` and ``--add-noqa`` do to files: verified fixes (see
:mod:`traineval.lint.fixes`), unified diffs, and ``# noqa`` comments added without changing
a single token of code."""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
from dataclasses import dataclass, field

from traineval.lint.engine import LintResult
from traineval.lint.fixes import FixOutcome, fix_file, write_atomic
from traineval.lint.lines import python_lines
from traineval.lint.noqa import parse_suppressions
from traineval.lint.report.finding import Finding


@dataclass
class Applied:
    """Across files: fixes applied, fixes dropped (with why), files refused, diffs."""

    fixed: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


def unified_diff(path: str, old: str, new: str) -> str:
    """A unified diff of one file (``--- a/path`` / ``+++ b/path``), Python's line model.

    >>> print(unified_diff("m.py", "model.eval\\n", "model.eval()\\n"), end="")
    --- a/m.py
    +++ b/m.py
    @@ -1 +1 @@
    -model.eval
    +model.eval()
    """
    lines = difflib.unified_diff(python_lines(old, keepends=True), python_lines(new, keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(ln if ln.endswith(("\n", "\r")) else ln + "\n\\ No newline at end of file\n" for ln in lines)


def apply_fixes(result: LintResult, roots: list[str], *, write: bool) -> Applied:
    """Verify every file's fixes; write them (``write``) or only collect diffs."""
    out = Applied()
    for path in sorted(result.fixes):
        outcome: FixOutcome = fix_file(path, result.fixes[path], roots=roots, digest=result.digests.get(path))
        if outcome.refused:
            out.notes.append(f"not fixed {path}: {outcome.refused}")
            continue
        for fx, why in outcome.dropped:
            out.notes.append(f"fix dropped {path}:{fx.line}:{fx.col + 1} {fx.code}: {why}")
        if outcome.data is None:
            continue
        if write:
            try:
                write_atomic(path, outcome.data)
            except OSError as exc:
                out.notes.append(f"not fixed {path}: cannot write it: {exc.strerror or exc}")
                continue
        out.fixed += len(outcome.applied)
        out.files.append(path)
        out.diffs.append(unified_diff(path, outcome.old, outcome.new))
    return out


def _unsafe_lines(text: str) -> set[int]:
    """Lines whose end is inside a string or continued with a backslash: no comment can go there."""
    unsafe: set[int] = set()
    for i, line in enumerate(python_lines(text), start=1):
        if line.endswith("\\"):
            unsafe.add(i)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        stringy = tok.type == tokenize.STRING or tokenize.tok_name.get(tok.type, "").startswith("FSTRING")
        if tok.start[0] < tok.end[0] and stringy:
            unsafe.update(range(tok.start[0], tok.end[0]))
    return unsafe


def add_noqa(text: str, findings: list[Finding]) -> tuple[str, int]:
    """``text`` with a ``# noqa: CODE`` on each finding's line (merged into an existing one);
    returns (new text, comments added). Lines where a comment cannot go are left alone, and the
    result is checked to hold exactly the same code (the same ``ast``).

    >>> add_noqa("model.eval  # noqa: TE002\\nx = 1\\n", [])
    ('model.eval  # noqa: TE002\\nx = 1\\n', 0)
    """
    want: dict[int, set[str]] = {}
    for f in findings:
        if f.code not in ("TE099", "TE090") and f.line:
            want.setdefault(f.line, set()).add(f.code)
    if not want:
        return text, 0
    try:
        unsafe = _unsafe_lines(text)
        before = ast.dump(ast.parse(text))
    except (SyntaxError, ValueError, tokenize.TokenError):
        return text, 0
    supp = parse_suppressions(text)
    lines = python_lines(text, keepends=True)
    added = 0
    for n, codes in sorted(want.items()):
        if n in unsafe or n > len(lines):
            continue
        line = lines[n - 1]
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        d = supp.lines.get(n)
        if d is not None and not d.codes:
            continue  # a blanket noqa already hides everything on the line
        if d is not None:
            merged = ", ".join(sorted({*d.codes, *codes}))
            body = body[:d.col] + f"# noqa: {merged}" + body[d.end_col:]
        else:
            body = body.rstrip() + f"  # noqa: {', '.join(sorted(codes))}"
        lines[n - 1] = body + ending
        added += 1
    new = "".join(lines)
    try:
        if ast.dump(ast.parse(new)) != before:
            return text, 0
    except (SyntaxError, ValueError):
        return text, 0
    return new, added
