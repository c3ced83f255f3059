"""Reading what the linter lints: Python files (any PEP 263 encoding) and Jupyter notebooks.

A notebook's code cells are joined into one text so that a model put in eval mode in one
cell counts in the next; :class:`CellMap` turns a line of that text back into
``(cell, line in cell)``. IPython magics and shell escapes (``%time``, ``!pip``, ``x?``)
are blanked so the rest still parses.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path

_MAGIC = re.compile(r"^\s*(%|!|\?)|\?\s*$")


@dataclass
class CellMap:
    """Where each notebook cell starts in the joined text (1-based line numbers)."""

    starts: list[int] = field(default_factory=list)  # first joined line of each code cell
    numbers: list[int] = field(default_factory=list)  # the cell's 1-based index among all cells

    def locate(self, line: int) -> tuple[int, int]:
        """``(cell number, line within the cell)`` of a line of the joined text."""
        index = 0
        for i, start in enumerate(self.starts):
            if start <= line:
                index = i
        return self.numbers[index], line - self.starts[index] + 1


@dataclass
class Source:
    """A file's text, ready to parse; ``error`` is set when it cannot be read or parsed."""

    path: str
    text: str = ""
    tree: ast.Module | None = None
    cells: CellMap | None = None
    error: tuple[str, int, int] | None = None  # (message, line, col)
    lines: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """Decode Python source bytes the way the interpreter does (BOM, PEP 263 cookie).

    >>> decode(b"# -*- coding: latin-1 -*-\\nx = '\\xe9'\\n").splitlines()[1]
    "x = 'é'"
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def _notebook_text(data: bytes) -> tuple[str, CellMap]:
    doc = json.loads(data.decode("utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no 'cells' list)")
    parts: list[str] = []
    cells = CellMap()
    line = 1
    for number, cell in enumerate(doc["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else str(src)
        lines = [("" if _MAGIC.search(ln) else ln) for ln in text.split("\n")]
        if lines and lines[0].lstrip().startswith("%%"):  # cell magic: the whole cell is not Python
            lines = ["" for _ in lines]
        cells.starts.append(line)
        cells.numbers.append(number)
        parts.append("\n".join(lines) + "\n")
        line += len(lines)
    return "".join(parts), cells


def _parse(text: str, path: str) -> tuple[ast.Module | None, tuple[str, int, int] | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours to report
            return ast.parse(text, filename=path, type_comments=False), None
    except SyntaxError as exc:
        return None, (exc.msg or "invalid syntax", exc.lineno or 1, max((exc.offset or 1) - 1, 0))
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return None, (f"{type(exc).__name__}: {exc}", 1, 0)


def read_source(path: str, data: bytes | None = None) -> Source:
    """Read and parse ``path`` (``data`` overrides the file's bytes); never raises for bad input.

    >>> read_source("x.py", b"model.eval\\n").tree is not None
    True
    >>> read_source("x.py", b"def (:\\n").error[0]
    'invalid syntax'
    """
    src = Source(path=path)
    try:
        raw = Path(path).read_bytes() if data is None else data
    except OSError as exc:
        src.error = (f"cannot read file: {exc.strerror or exc}", 1, 0)
        return src
    try:
        if path.endswith(".ipynb"):
            src.text, src.cells = _notebook_text(raw)
        else:
            src.text = decode(raw)
    except (ValueError, UnicodeDecodeError, SyntaxError, LookupError) as exc:
        src.error = (f"cannot decode: {exc}", 1, 0)
        return src
    src.lines = src.text.splitlines()
    src.tree, src.error = _parse(src.text, path)
    if src.error and src.cells is not None:
        src.tree, src.error = _parse_cells(src)
    return src


def _parse_cells(src: Source) -> tuple[ast.Module | None, tuple[str, int, int] | None]:
    """A notebook whose joined text fails: blank the cells that do not parse on their own."""
    assert src.cells is not None
    lines = src.text.split("\n")
    first_error: tuple[str, int, int] | None = None
    bounds = [*src.cells.starts, len(lines) + 1]
    for i in range(len(src.cells.starts)):
        a, b = bounds[i] - 1, bounds[i + 1] - 1
        _, err = _parse("\n".join(lines[a:b]), src.path)
        if err:
            lines[a:b] = [""] * (b - a)
            first_error = first_error or (err[0], err[1] + a, err[2])
    tree, _ = _parse("\n".join(lines), src.path)
    return tree, first_error


def char_col(line_text: str, byte_col: int) -> int:
    """Turn an ``ast`` column (a UTF-8 byte offset) into a character offset."""
    if line_text.isascii():
        return byte_col
    return len(line_text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))
