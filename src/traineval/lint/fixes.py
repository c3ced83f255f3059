"""Applying autofixes: non-overlapping edits, applied back to front, files rewritten only
when something changed (with the file's own encoding and line endings)."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

from traineval.lint.ir import Edit


def apply_edits(text: str, edits: list[Edit]) -> tuple[str, int]:
    """``text`` with ``edits`` applied (overlapping ones skipped); returns (new text, applied).

    >>> from traineval.lint.ir import Span
    >>> apply_edits("model.eval\\n", [Edit(Span(1, 10, 1, 10), "()")])
    ('model.eval()\\n', 1)
    """
    lines = text.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))

    def offset(line: int, col: int) -> int:
        if line - 1 >= len(lines):
            return len(text)
        return starts[line - 1] + min(col, len(lines[line - 1].rstrip("\r\n")))

    spans = sorted(((offset(e.span.line, e.span.col), offset(e.span.end_line, e.span.end_col), e.text)
                    for e in edits), reverse=True)
    applied, last_start = 0, len(text) + 1
    for start, end, new in spans:
        if end > last_start or start > end:
            continue  # overlaps an edit already applied
        text = text[:start] + new + text[end:]
        last_start = start
        applied += 1
    return text, applied


def fix_file(path: str, edits: list[Edit]) -> int:
    """Apply ``edits`` to ``path`` in place; returns how many were applied."""
    raw = Path(path).read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    bom = raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig" if bom else encoding)
    newline = "\r\n" if "\r\n" in text else None
    norm = text.replace("\r\n", "\n")
    new, applied = apply_edits(norm, edits)
    if applied:
        if newline:
            new = new.replace("\n", newline)
        data = new.encode("utf-8" if bom else encoding)
        Path(path).write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return applied
