"""Python's line model and parsing, shared by the reader, notebooks and fixes.

Only ``\\r\\n``, ``\\r`` and ``\\n`` end a line, as in Python's tokenizer.
"""

from __future__ import annotations

import ast
import bisect
import re
import warnings
from dataclasses import dataclass, field

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def python_lines(text: str, keepends: bool = False) -> list[str]:
    """``text`` split into lines the way Python's tokenizer splits it.

    >>> python_lines("a\\x0cb\\r\\nc\\rd\\u2028e\\n")
    ['a\\x0cb', 'c', 'd\\u2028e']
    >>> "a\\x0cb".splitlines()
    ['a', 'b']
    """
    lines = _LINE.findall(text)
    if keepends:
        return lines
    return [ln.rstrip("\r\n") for ln in lines]


def line_starts(text: str) -> list[int]:
    """The character offset where each line (Python's model) starts; one extra entry: ``len(text)``."""
    starts = [0]
    for m in _LINE.finditer(text):
        starts.append(m.end())
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


@dataclass
class CellMap:
    """Where each notebook cell starts in the joined text (1-based line numbers)."""

    starts: list[int] = field(default_factory=list)  # first joined line of each code cell
    numbers: list[int] = field(default_factory=list)  # the cell's 1-based index among all cells

    def locate(self, line: int) -> tuple[int, int]:
        """``(cell number, line within the cell)`` of a line of the joined text."""
        index = max(bisect.bisect_right(self.starts, line) - 1, 0)
        return self.numbers[index], line - self.starts[index] + 1


def parse(text: str, path: str) -> tuple[ast.Module | None, tuple[str, int, int] | None]:
    """``ast.parse`` that returns ``(tree, None)`` or ``(None, (message, line, col))``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours to report
            return ast.parse(text, filename=path, type_comments=False), None
    except SyntaxError as exc:
        return None, (exc.msg or "invalid syntax", exc.lineno or 1, max((exc.offset or 1) - 1, 0))
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return None, (f"{type(exc).__name__}: {exc}", 1, 0)
