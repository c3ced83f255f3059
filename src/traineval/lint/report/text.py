"""Human output: one line per finding, the source line under it with carets (ruff's code
frame), the fix hint, a summary line; colour only on a terminal (``NO_COLOR`` /
``FORCE_COLOR`` honoured), pluralised counts. ``grouped``: findings under their file name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from traineval._console import plural
from traineval.diagnostics import Severity
from traineval.lint.report.finding import Finding

_COLORS = {"error": "31", "warning": "33", "info": "36", "bold": "1", "dim": "2", "green": "32"}


def _paint(text: str, what: str, color: bool) -> str:
    return f"\x1b[{_COLORS[what]}m{text}\x1b[0m" if color else text


class _Frames:
    """Source lines for code frames, each file read once, on demand."""

    def __init__(self, sources: Mapping[str, bytes] | None) -> None:
        self.sources = dict(sources or {})
        self.cache: dict[str, tuple[list[str], dict[int, int]] | None] = {}

    def line(self, f: Finding) -> str | None:
        if f.path not in self.cache:
            from traineval.lint.source import read_source

            src = read_source(f.path, self.sources.get(f.path))
            starts = dict(zip(src.cells.numbers, src.cells.starts, strict=True)) if src.cells else {}
            self.cache[f.path] = (src.lines, starts) if src.lines else None
        got = self.cache[f.path]
        if got is None or not f.line:
            return None
        lines, starts = got
        n = f.line if f.cell is None else starts.get(f.cell, 1) + f.line - 1
        return lines[n - 1] if 0 < n <= len(lines) else None


def code_frame(line: str, number: int, col: int, end_col: int, same_line: bool, color: bool = False) -> list[str]:
    """The source line under a finding, carets under its span (columns are 1-based characters).

    >>> print("\\n".join(code_frame("model.eval", 16, 1, 11, True)))
       |
    16 | model.eval
       | ^^^^^^^^^^
       |
    """
    shown = "".join(c if c.isprintable() or c == "\t" else " " for c in line).replace("\t", " ")
    start = max(col - 1, 0)
    stop = end_col - 1 if same_line and end_col > col else len(shown)
    width = max(stop - start, 1)
    gutter = " " * len(str(number))
    carets = _paint("^" * width, "error", color)
    return [f"{gutter} |", f"{number} | {shown}", f"{gutter} | {' ' * start}{carets}", f"{gutter} |"]


def render_text(findings: Sequence[Finding], *, color: bool = False, statistics: bool = False, fixed: int = 0,
                files: int | None = None, quiet: bool = False, sources: Mapping[str, bytes] | None = None) -> str:
    """The text report: each finding, its code frame (not with ``quiet``) and fix hint, a summary."""
    frames = _Frames(sources)
    lines: list[str] = []
    if statistics:
        counts = Counter(f.code for f in findings)
        fixable = Counter(f.code for f in findings if f.fixable)
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            f = next(x for x in findings if x.code == code)
            from traineval.catalog import get_rule

            mark = "[*]" if fixable[code] else "   "
            lines.append(f"{n:>5}\t{code}\t{mark} {get_rule(code).name}  ({f.severity.value})")
    else:
        for f in findings:
            d = f.diagnostic
            sev = _paint(d.severity.value, d.severity.value, color)
            loc = _paint(f.location, "bold", color)
            fix = " [*]" if f.fixable else ""
            lines.append(f"{loc}: {_paint(d.code, d.severity.value, color)} [{sev}]{fix} {d.message}")
            if quiet:
                continue
            src = frames.line(f) if f.path else None
            if src is not None:
                lines += code_frame(src, f.line, f.col, f.end_col, f.end_line == f.line, color)
            if d.fix:
                lines.append(_paint(f"  fix: {d.fix}", "dim", color))
    if not quiet:
        lines.append(summary(findings, fixed=fixed, files=files, color=color))
    return "\n".join(lines)


def render_grouped(findings: Sequence[Finding], *, color: bool = False, fixed: int = 0, files: int | None = None,
                   quiet: bool = False) -> str:
    """Findings under their file's name, one indented ``line:col CODE message`` each (ruff's ``grouped``)."""
    lines: list[str] = []
    last: str | None = None
    for f in findings:
        key = f.path or (f.diagnostic.where or "<model>")
        if key != last:
            if last is not None:
                lines.append("")
            lines.append(_paint(key, "bold", color) + ":")
            last = key
        d = f.diagnostic
        cell = f"cell {f.cell}:" if f.cell is not None else ""
        pos = f"{cell}{f.line}:{f.col}" if f.line else ""
        fix = " [*]" if f.fixable else ""
        lines.append(f"  {pos} {_paint(d.code, d.severity.value, color)}{fix} {d.message}")
    if not quiet:
        if lines:
            lines.append("")
        lines.append(summary(findings, fixed=fixed, files=files, color=color))
    return "\n".join(lines)


def summary(findings: Sequence[Finding], *, fixed: int = 0, files: int | None = None, color: bool = False) -> str:
    """One closing line, coloured by the worst outcome."""
    counts = Counter(f.severity for f in findings)
    scanned = f" in {plural(files, 'file')}" if files is not None else ""
    fixed_note = f", fixed {fixed}" if fixed else ""
    if not findings:
        return _paint(f"All checks passed{scanned}{fixed_note}.", "green", color)
    parts = [plural(counts[s], s.value) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO) if counts[s]]
    fixable = sum(f.fixable for f in findings)
    tail = f" ({fixable} fixable with `--fix`)" if fixable else ""
    worst = max(counts, key=lambda s: s.rank).value
    return _paint(f"Found {', '.join(parts)}{scanned}{fixed_note}{tail}.", worst, color)
