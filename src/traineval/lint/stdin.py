"""``traineval lint -`` (source on stdin, as editors run ruff) and ``--add-noqa`` on files.

With ``-`` the source is read from stdin and named by ``--stdin-filename`` (its config,
per-file-ignores and notebook handling follow that name). ``--fix`` prints the fixed source
to stdout and the report to stderr; ``--diff`` prints the diff.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from traineval.lint.engine import LintResult, analyze_file, assemble


def _lint_bytes(name: str, data: bytes, cfg: Any) -> LintResult:
    return assemble([analyze_file(name, data, max_bytes=0)], cfg)


def run_stdin(args: argparse.Namespace, cfg: Any) -> int:
    """Lint the source on stdin; returns the exit code."""
    from traineval._cli import EXIT_ERROR
    from traineval.lint.apply import add_noqa, unified_diff
    from traineval.lint.fixes import _decode, _encode, _verify
    from traineval.lint.output import emit

    name = args.stdin_filename or "-"
    data = sys.stdin.buffer.read()
    result = _lint_bytes(name, data, cfg)
    fixed = 0
    new_data = data
    if (args.fix or args.diff or args.add_noqa) and not name.endswith(".ipynb"):
        try:
            text, encoding, bom = _decode(data)
        except (SyntaxError, LookupError, UnicodeError, ValueError):
            text = None
        if text is not None and args.add_noqa:
            new_text, fixed = add_noqa(text, result.findings)
            new_data = _encode(new_text, encoding, bom)
        elif text is not None and result.fixes.get(name):
            fixes = result.fixes[name]
            new_text, blob, reasons = _verify(name, data, text, fixes, encoding, bom)
            if any(reasons):  # keep the fixes that verify on their own
                ok = [f for f in fixes if not _verify(name, data, text, [f], encoding, bom)[2][0]]
                new_text, blob, reasons = _verify(name, data, text, ok, encoding, bom) if ok else (text, data, [])
                fixes = ok if not any(reasons) else []
                if not fixes:
                    new_text, blob = text, data
            fixed, new_data = len(fixes), blob
        if args.diff:
            sys.stdout.write(unified_diff(name, data.decode("utf-8", "replace"), new_data.decode("utf-8", "replace")))
            return EXIT_ERROR if result.internal else (1 if new_data != data else 0)
        sys.stdout.buffer.write(new_data)
        sys.stdout.flush()
        result = _lint_bytes(name, new_data, cfg)
        emit(result.findings, args, cfg, fixed=fixed, files=1, sources={name: new_data}, stream=sys.stderr)
    else:
        emit(result.findings, args, cfg, fixed=0, files=1, sources={name: data})
    if result.internal:
        return EXIT_ERROR
    if args.exit_zero:
        return 0
    return 1 if any(f.severity.rank > 0 for f in result.findings) else 0


def add_noqa_files(result: LintResult) -> tuple[int, list[str]]:
    """Add ``# noqa`` comments to every file with findings; returns (comments added, notes)."""
    import os

    from traineval.lint.apply import add_noqa
    from traineval.lint.engine import digest
    from traineval.lint.fixes import _decode, _encode, write_atomic
    from traineval.lint.source import read_bytes

    by_file: dict[str, list[Any]] = {}
    for f in result.findings:
        if f.path and f.cell is None and f.code not in ("TE099", "TE090"):
            by_file.setdefault(f.path, []).append(f)
    added, notes = 0, []
    for path, findings in sorted(by_file.items()):
        if os.path.islink(path):
            notes.append(f"no noqa added to {path}: it is a symbolic link")
            continue
        try:
            raw = read_bytes(path, None)
            if digest(raw) != result.digests.get(path):
                notes.append(f"no noqa added to {path}: it changed since it was linted")
                continue
            text, encoding, bom = _decode(raw)
            new, n = add_noqa(text, findings)
            if n:
                write_atomic(path, _encode(new, encoding, bom))
                added += n
        except (OSError, SyntaxError, LookupError, UnicodeError, ValueError) as exc:
            notes.append(f"no noqa added to {path}: {exc}")
    return added, notes
