"""Jupyter notebooks, read the way ruff reads them.

Each code cell is parsed on its own first; only a cell that is not plain Python has its
IPython syntax neutralised, column-preserving, so every finding keeps its cell and column:

* a cell magic (``%%bash``, ``%%html``...) makes the whole cell not Python, except the magics
  whose body is Python (``%%time``, ``%%timeit``, ``%%capture``, ``%%prun``, ``%%debug``);
* a line magic or shell escape (``%time f()``, ``!pip install x``, continued with ``\\``);
* an assignment from one (``files = !ls``, ``t = %timeit -o f()``): its right side only;
* help syntax (``obj?``, ``obj??``, ``?obj``, ``%magic?``), never a comment ending in ``?``.

A cell that still does not parse is reported (its cell and line) and left out; the others
are linted.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from traineval.lint.lines import CellMap, parse, python_lines

PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
_ESCAPE = re.compile(r"^(\s*)(?:%|!)")
_ASSIGN = re.compile(r"^(\s*[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*\s*=\s*)[!%]")
_HELP = re.compile(r"^(\s*)(?:\?{1,2}\s*%{0,2}[A-Za-z_][\w.]*|%{0,2}[A-Za-z_][\w.]*(?:\(\))?\s*\?{1,2})\s*$")


def _cell_source(cell: dict[str, Any], number: int) -> str:
    src = cell.get("source", "")
    if isinstance(src, str):
        return src
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        return "".join(src)
    raise ValueError(f"cell {number}: 'source' must be a string or a list of strings")


def neutralise(lines: list[str]) -> list[str]:
    """The lines of one cell with IPython syntax replaced by Python of the same columns.

    >>> neutralise(["%%bash", "ls -l"])
    ['', '']
    >>> neutralise(["files = !ls", "!pip install x \\\\", "  y", "len?", "x = 1  # why?"])
    ['files = None', 'pass', '', 'pass', 'x = 1  # why?']
    """
    out = list(lines)
    if out and out[0].lstrip().startswith("%%"):
        name = out[0].lstrip()[2:].split(None, 1)[0] if out[0].lstrip()[2:].strip() else ""
        if name not in PYTHON_CELL_MAGICS:
            return ["" for _ in out]
        out[0] = ""
    i = 0
    while i < len(out):
        line = out[i]
        m = _ASSIGN.match(line)
        esc = _ESCAPE.match(line)
        if m:
            out[i] = m.group(1) + "None"
        elif esc or _HELP.match(line):
            indent = (esc or _HELP.match(line)).group(1)  # type: ignore[union-attr]  # one of the two patterns matched this line above
            out[i] = indent + "pass"
        else:
            i += 1
            continue
        while line.endswith("\\") and i + 1 < len(out):  # a magic continued on the next lines
            i += 1
            line = out[i]
            out[i] = ""
        i += 1
    return out


def notebook_text(raw: bytes, path: str) -> tuple[str, CellMap, ast.Module | None, tuple[str, int, int] | None]:
    """``(joined text, cell map, tree, first error)`` of a notebook's bytes.

    Raises :class:`ValueError` for a file that is not a notebook (bad JSON, too deeply nested,
    no ``cells`` list, a cell whose ``source`` is not text).
    """
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except RecursionError:
        raise ValueError("the notebook's JSON is too deeply nested") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no 'cells' list)")
    parts: list[str] = []
    cells = CellMap()
    first_error: tuple[str, int, int] | None = None
    line = 1
    for number, cell in enumerate(doc["cells"], start=1):
        if not isinstance(cell, dict):
            raise ValueError(f"cell {number} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        text = _cell_source(cell, number)
        lines = python_lines(text)
        _, err = parse(text, path)
        if err is not None:
            lines = neutralise(lines)
            _, err = parse("\n".join(lines) + "\n", path)
            if err is not None:
                first_error = first_error or (f"cell {number}: {err[0]}", err[1] + line - 1, err[2])
                lines = ["" for _ in lines]
        cells.starts.append(line)
        cells.numbers.append(number)
        parts.append("\n".join(lines) + "\n")
        line += max(len(lines), 1) if lines else 1
    joined = "".join(parts)
    tree, err = parse(joined, path)
    return joined, cells, tree, first_error or err
