"""Suppression comments, read with :mod:`tokenize` as ruff reads them.

* ``# noqa`` on a line hides every finding that starts on it;
* ``# noqa: TE001, TE002`` hides those codes only;
* ``# traineval: noqa`` anywhere in a file hides every finding in it, and
  ``# traineval: noqa: TE005`` hides one code in the whole file.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field

from traineval.lint.lines import python_lines

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.IGNORECASE)
_FILE = re.compile(
    r"#\s*traineval:\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.IGNORECASE
)


@dataclass
class Directive:
    """One ``# noqa`` comment: its line, the codes it names (empty: all), where it sits."""

    line: int
    codes: tuple[str, ...]
    col: int  # character column of the ``#``
    end_col: int
    ws_col: int = 0  # where the whitespace before the comment starts (to delete the whole comment)
    head: bool = True  # the directive opens the comment (no comment text before it)
    tail: bool = False  # comment text follows the directive (``# noqa: TE001 - see #12``)
    used: set[str] = field(default_factory=set)


@dataclass
class Suppressions:
    """Every suppression comment of a file."""

    lines: dict[int, Directive] = field(default_factory=dict)
    file_all: bool = False
    file_codes: frozenset[str] = frozenset()

    def hides(self, code: str, line: int) -> bool:
        """Whether a finding of ``code`` starting on ``line`` is suppressed (and mark it used)."""
        if self.file_all or code in self.file_codes:
            return True
        d = self.lines.get(line)
        if d is None:
            return False
        if not d.codes or code in d.codes:
            d.used.add(code)
            return True
        return False


def _codes(text: str | None) -> tuple[str, ...]:
    return tuple(c.upper() for c in re.split(r"[\s,]+", text.strip())) if text else ()


def parse_suppressions(text: str) -> Suppressions:
    """Find the suppression comments of ``text`` (comments only, never strings).

    >>> s = parse_suppressions("model.eval  # noqa: TE001\\n")
    >>> s.hides("TE001", 1), s.hides("TE002", 1)
    (True, False)
    """
    out = Suppressions()
    if "noqa" not in text and "NOQA" not in text.upper():
        return out
    comments: list[tuple[int, int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                comments.append((tok.start[0], tok.start[1], tok.string))
    except (tokenize.TokenError, SyntaxError, IndentationError, ValueError):
        # fall back to a line scan: a file that tokenizes badly still honours its comments
        for i, raw in enumerate(python_lines(text), start=1):
            pos = raw.find("#")
            if pos >= 0:
                comments.append((i, pos, raw[pos:]))
    lines = python_lines(text)
    for line, col, comment in comments:
        m = _FILE.search(comment)
        if m:
            codes = _codes(m.group("codes"))
            if codes:
                out.file_codes = out.file_codes | frozenset(codes)
            else:
                out.file_all = True
            continue
        m = _NOQA.search(comment)
        if m:
            before = lines[line - 1][:col] if line - 1 < len(lines) else ""
            head, tail = m.start() == 0, comment[m.end():].strip() != ""
            ws = len(before.rstrip()) if head and not tail else col + m.start()
            out.lines[line] = Directive(line, _codes(m.group("codes")), col + m.start(), col + m.end(), ws, head, tail)
    return out
