"""Human output: one line per finding, the fix hint under it, a summary line; colour only
on a terminal (``NO_COLOR`` / ``FORCE_COLOR`` honoured), pluralised counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from traineval._console import plural
from traineval.diagnostics import Severity
from traineval.lint.report.finding import Finding

_COLORS = {"error": "31", "warning": "33", "info": "36", "bold": "1", "dim": "2", "green": "32"}


def _paint(text: str, what: str, color: bool) -> str:
    return f"\x1b[{_COLORS[what]}m{text}\x1b[0m" if color else text


def render_text(findings: Sequence[Finding], *, color: bool = False, statistics: bool = False, fixed: int = 0,
                files: int | None = None) -> str:
    """The text report."""
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
            if d.fix:
                lines.append(_paint(f"  fix: {d.fix}", "dim", color))
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
