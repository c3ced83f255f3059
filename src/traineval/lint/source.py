"""Reading what the linter lints: Python files (any PEP 263 encoding) and Jupyter notebooks.

Lines follow Python's own model: only ``\\r\\n``, ``\\r`` and ``\\n`` end a line (never form
feed, ``\\x0b``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 or U+2029, where ``str.splitlines``
also breaks).

A notebook's code cells are joined into one text so that a model put in eval mode in one
cell counts in the next; :class:`CellMap` turns a line of that text back into
``(cell, line in cell)``. IPython syntax is handled as ruff handles it (see
:mod:`traineval.lint.notebook`).
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import stat
import tokenize
from dataclasses import dataclass, field

from traineval.lint.lines import CellMap, line_starts, parse, python_lines

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # files larger than this are skipped with a note


class SpecialFileError(OSError):
    """A path that is not a regular file (a device, FIFO or socket), or too large to lint."""


def read_bytes(path: str, max_bytes: int | None = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file, never blocking on a FIFO nor reading a device forever.

    Raises :class:`SpecialFileError` for a device, FIFO or socket, or a file over ``max_bytes``,
    :class:`OSError` when it cannot be read.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise SpecialFileError(f"not a regular file ({_kind(st.st_mode)})")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):  # replaced between stat and open
            raise SpecialFileError(f"not a regular file ({_kind(st.st_mode)})")
        if max_bytes is not None and st.st_size > max_bytes:
            raise SpecialFileError(f"larger than the size limit ({st.st_size} > {max_bytes} bytes)")
        data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise SpecialFileError(f"larger than the size limit (> {max_bytes} bytes)")
    return data


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


@dataclass
class Source:
    """A file's text, ready to parse; ``error`` is set when it cannot be read or parsed."""

    path: str
    text: str = ""
    tree: ast.Module | None = None
    cells: CellMap | None = None
    error: tuple[str, int, int] | None = None  # (message, line, col)
    lines: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the file was not read at all (special file, size limit)
    digest: str = ""  # fingerprint of the bytes read
    _starts: list[int] | None = None

    def offset(self, line: int, col: int) -> int:
        """The character offset of 1-based ``line``, 0-based character ``col`` in :attr:`text`."""
        if self._starts is None:
            self._starts = line_starts(self.text)
        starts = self._starts
        if line < 1:
            return 0
        if line >= len(starts):
            return len(self.text)
        return min(starts[line - 1] + col, starts[line] if line < len(starts) else len(self.text))

    def segment(self, node: ast.AST) -> str | None:
        """The exact source text of ``node`` (like :func:`ast.get_source_segment`, without
        re-splitting the whole file on every call)."""
        try:
            line, end_line = node.lineno, node.end_lineno  # type: ignore[attr-defined]  # every node given here has positions
            col, end_col = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]  # every node given here has positions
        except AttributeError:
            return None
        if end_line is None or end_col is None or not (0 < line <= len(self.lines)):
            return None
        if not (0 < end_line <= len(self.lines)):
            return None
        a = self.offset(line, char_col(self.lines[line - 1], col))
        b = self.offset(end_line, char_col(self.lines[end_line - 1], end_col))
        return self.text[a:b]


def decode(data: bytes) -> str:
    """Decode Python source bytes the way the interpreter does (BOM, PEP 263 cookie).

    >>> decode(b"# -*- coding: latin-1 -*-\\nx = '\\xe9'\\n").splitlines()[1]
    "x = 'é'"
    """
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def read_source(path: str, data: bytes | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES) -> Source:
    """Read and parse ``path`` (``data`` overrides the file's bytes); never raises for bad input.

    >>> read_source("x.py", b"model.eval\\n").tree is not None
    True
    >>> read_source("x.py", b"def (:\\n").error[0]
    'invalid syntax'
    """
    from traineval.lint.notebook import notebook_text

    src = Source(path=path)
    try:
        raw = read_bytes(path, max_bytes) if data is None else data
    except SpecialFileError as exc:
        src.skipped = str(exc)
        return src
    except OSError as exc:
        src.error = (f"cannot read file: {exc.strerror or exc}", 1, 0)
        return src
    src.digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
    try:
        if path.endswith(".ipynb"):
            src.text, src.cells, src.tree, src.error = notebook_text(raw, path)
            src.lines = python_lines(src.text)
            return src
        src.text = decode(raw)
    except (ValueError, UnicodeDecodeError, SyntaxError, LookupError) as exc:
        src.error = (f"cannot decode: {exc}", 1, 0)
        return src
    src.lines = python_lines(src.text)
    src.tree, src.error = parse(src.text, path)
    return src


def char_col(line_text: str, byte_col: int) -> int:
    """Turn an ``ast`` column (a UTF-8 byte offset) into a character offset."""
    if line_text.isascii():
        return byte_col
    return len(line_text.encode("utf-8", errors="surrogatepass")[:byte_col].decode("utf-8", errors="ignore"))
