"""Applying autofixes exactly: positions in Python's line model, non-overlapping edits applied
back to front, each file once by its real path, never outside the linted roots nor through a
symbolic link, and every fix verified before anything is written.

A fix is kept only when the fixed text still parses, the bytes outside the fix's span are
unchanged (same encoding, BOM and line endings), and the rule no longer fires where the fix
was made; otherwise it is dropped and reported.
"""

from __future__ import annotations

import bisect
import io
import os
import stat
import tempfile
import tokenize
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from traineval.lint.ir import Edit, Span
from traineval.lint.lines import line_starts

if TYPE_CHECKING:
    from traineval.lint.engine import Fix

MAX_ONE_BY_ONE = 64  # fixes tried one at a time when a file's fixes fail together


def _offsets(text: str, starts: list[int], edits: list[Edit]) -> list[tuple[int, int, str, int]]:
    def offset(line: int, col: int) -> int:
        if line < 1:
            return 0
        if line >= len(starts):
            return len(text)
        end = starts[line]
        while end > starts[line - 1] and text[end - 1] in "\r\n":
            end -= 1  # a column never reaches into the line ending
        return min(starts[line - 1] + col, end)

    return [(offset(e.span.line, e.span.col), offset(e.span.end_line, e.span.end_col), e.text, i)
            for i, e in enumerate(edits)]


def plan(text: str, edits: list[Edit]) -> list[tuple[int, int, str, int]]:
    """The edits as ``(start, end, new text, index)`` character offsets, overlapping ones left out,
    in increasing order."""
    spans = sorted(_offsets(text, line_starts(text), edits))
    kept: list[tuple[int, int, str, int]] = []
    for start, end, new, i in spans:
        if start > end or (kept and start < kept[-1][1]) or (kept and start == kept[-1][0] == kept[-1][1] == end):
            continue  # overlaps an edit already kept (two insertions at one point: the first)
        kept.append((start, end, new, i))
    return kept


def splice(text: str, spans: list[tuple[int, int, str, int]]) -> str:
    """``text`` with the planned ``spans`` replaced (one pass, linear in the text)."""
    out, last = [], 0
    for start, end, new, _ in spans:
        out += [text[last:start], new]
        last = end
    out.append(text[last:])
    return "".join(out)


def apply_edits(text: str, edits: list[Edit]) -> tuple[str, int]:
    """``text`` with ``edits`` applied (overlapping ones skipped); returns (new text, applied).

    Lines end only at ``\\r\\n``, ``\\r`` or ``\\n``, as in Python (a form feed does not end one).

    >>> from traineval.lint.ir import Span
    >>> apply_edits("model.eval\\n", [Edit(Span(1, 10, 1, 10), "()")])
    ('model.eval()\\n', 1)
    >>> apply_edits("x = 1\\x0c\\nmodel.eval\\n", [Edit(Span(2, 10, 2, 10), "()")])
    ('x = 1\\x0c\\nmodel.eval()\\n', 1)
    """
    spans = plan(text, edits)
    return splice(text, spans), len(spans)


@dataclass
class FixOutcome:
    """What fixing one file did: the fixes applied, the ones dropped (and why), the texts."""

    path: str
    applied: list[Fix] = field(default_factory=list)
    dropped: list[tuple[Fix, str]] = field(default_factory=list)
    refused: str | None = None  # the whole file was left alone
    old: str = ""
    new: str = ""
    data: bytes | None = None  # the bytes to write (None: nothing changes)


def _decode(raw: bytes) -> tuple[str, str, bool]:
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    bom = raw.startswith(b"\xef\xbb\xbf")
    return raw.decode("utf-8-sig" if bom else encoding), "utf-8" if bom else encoding, bom


def _encode(text: str, encoding: str, bom: bool) -> bytes:
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


def _position(starts: list[int], offset: int) -> tuple[int, int]:
    i = max(bisect.bisect_right(starts, offset) - 1, 0)
    return i + 1, offset - starts[i]


def _verify(path: str, raw: bytes, text: str, fixes: list[Fix], encoding: str, bom: bool
            ) -> tuple[str, bytes, list[str | None]]:
    """Apply ``fixes`` together; return (new text, new bytes, a failure reason per fix or None)."""
    from traineval.lint.engine import analyze_file
    from traineval.lint.files import module_name
    from traineval.lint.noqa import parse_suppressions

    spans = plan(text, [f.edit for f in fixes])
    reasons: list[str | None] = ["overlaps another fix"] * len(fixes)
    for *_, i in spans:
        reasons[i] = None
    new = splice(text, spans)
    try:
        data = _encode(new, encoding, bom)
    except UnicodeEncodeError:
        return new, b"", ["the fixed text cannot be written in the file's encoding"] * len(fixes)
    # bytes outside the spans are untouched: compare each unchanged stretch byte for byte
    pos_old = pos_new = 3 if bom else 0
    last = 0
    for start, end, repl, _ in [*spans, (len(text), len(text), "", -1)]:
        stretch = text[last:start].encode(encoding)
        n = len(stretch)
        if raw[pos_old:pos_old + n] != stretch or data[pos_new:pos_new + n] != stretch:
            return new, data, ["the fix would change bytes outside its span"] * len(fixes)
        pos_old += n + len(text[start:end].encode(encoding))
        pos_new += n + len(repl.encode(encoding))
        last = end
    if pos_old != len(raw) or pos_new != len(data):
        return new, data, ["the fix would change bytes outside its span"] * len(fixes)
    result = analyze_file(path, data, max_bytes=0, module=module_name(path))
    if result.error is not None or result.facts is None:
        why = result.error[0] if result.error else "the fixed file cannot be analysed"
        return new, data, [r or f"the fixed file no longer parses ({why})" for r in reasons]
    if not _compiles(new) and _compiles(text):  # ast.parse accepts `return` outside a function; compile does not
        return new, data, [r or "the fixed file no longer compiles" for r in reasons]
    starts_new = line_starts(new)
    starts_old = line_starts(text)
    hits = {(h.code, h.span.line, h.span.col) for h in result.facts.hits}
    supp = parse_suppressions(new)
    edit_starts: list[int] = []
    cumulative: list[int] = [0]  # delta of the text before each edit start
    for start, end, repl, _ in spans:
        edit_starts.append(start)
        cumulative.append(cumulative[-1] + len(repl) - (end - start))
    for i, fx in enumerate(fixes):
        if reasons[i] is not None:
            continue
        o = _offsets(text, starts_old, [Edit(Span(fx.line, fx.col, fx.line, fx.col), "")])[0][0]
        line, col = _position(starts_new, o + cumulative[bisect.bisect_left(edit_starts, o)])
        if fx.code == "TE090":
            kept = {c.strip().upper() for c in fx.edit.text.partition(":")[2].split(",") if c.strip()}
            d = supp.lines.get(line)
            if d is not None and not set(d.codes) <= kept:
                reasons[i] = "the unused noqa code is still there after the fix"
        elif (fx.code, line, col) in hits:
            reasons[i] = f"{fx.code} still fires there after the fix"
    return new, data, reasons


def fix_file(path: str, fixes: list[Fix], *, roots: list[str] | None = None, digest: str | None = None) -> FixOutcome:
    """Verify ``fixes`` on ``path`` and return what writing them would do (nothing is written).

    Args:
        path: the file, as the linter named it.
        fixes: the fixes of its findings.
        roots: the linted paths; a file whose real path is outside all of them is refused.
        digest: the fingerprint of the bytes linted; a file changed since is refused.

    Returns:
        A :class:`FixOutcome`; write :attr:`FixOutcome.data` with :func:`write_atomic`.

    >>> import tempfile, pathlib
    >>> from traineval.lint.engine import lint_paths
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.py"; _ = f.write_text("model.eval\\n")
    >>> out = fix_file(str(f), lint_paths([str(f)]).fixes[str(f)])
    >>> out.new, len(out.applied), out.dropped
    ('model.eval()\\n', 1, [])
    """
    from traineval.lint.engine import digest as fingerprint
    from traineval.lint.source import read_bytes

    out = FixOutcome(path)
    if os.path.islink(path):
        out.refused = "is a symbolic link (fix the file it points to instead)"
        return out
    real = os.path.realpath(path)
    if roots is not None and not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep)
                                     for r in (os.path.realpath(x) for x in roots)):
        out.refused = "is outside the linted paths"
        return out
    try:
        raw = read_bytes(path, None)
    except OSError as exc:
        out.refused = f"cannot be read again: {exc}"
        return out
    if digest is not None and fingerprint(raw) != digest:
        out.refused = "changed since it was linted"
        return out
    try:
        text, encoding, bom = _decode(raw)
        if _encode(text, encoding, bom) != raw:
            raise ValueError
    except (ValueError, SyntaxError, LookupError, UnicodeError):
        out.refused = "its bytes do not survive decoding and encoding unchanged"
        return out
    out.old = out.new = text
    new, data, reasons = _verify(path, raw, text, fixes, encoding, bom)
    if any(reasons) and len(fixes) > 1:
        ok = []
        if len(fixes) <= MAX_ONE_BY_ONE:
            ok = [f for f in fixes if not _verify(path, raw, text, [f], encoding, bom)[2][0]]
        alone = {id(f): _why(reasons[i]) for i, f in enumerate(fixes)}
        if ok:
            new, data, again = _verify(path, raw, text, ok, encoding, bom)
            if any(again):
                ok = []
        out.dropped = [(f, alone[id(f)] or "fails together with the other fixes") for f in fixes if f not in ok]
        out.applied = ok
    elif any(reasons):
        out.dropped = [(fixes[0], _why(reasons[0]))]
    else:
        out.applied = list(fixes)
    if out.applied:
        out.new, out.data = new, data
    return out


def _compiles(text: str) -> bool:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, "<fix>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _why(reason: str | None) -> str:
    return reason or "fails together with the other fixes"


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path``'s content with ``data`` atomically, keeping its permissions."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".traineval-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
