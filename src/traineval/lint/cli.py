"""``traineval lint [PATH ...]`` — the command line, with ruff's habits.

Exit codes: 0 nothing to report (or ``--exit-zero``, or only ``info`` findings), 1 errors
or warnings, 2 bad usage or configuration, or an internal error (whatever ``--exit-zero`` says).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from traineval.errors import TraineValValueError

FORMAT_CHOICES = ("text", "json", "json-lines", "sarif", "github", "gitlab", "junit", "grouped")


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or []:
        out += [c.strip() for c in v.split(",") if c.strip()]
    return tuple(out)


def configure_lint(parser: argparse.ArgumentParser) -> None:
    """Add the ``lint`` options to ``parser`` (abbreviations off: ``--fi`` is not ``--fix``)."""
    parser.allow_abbrev = False
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to lint (default: .; - reads stdin)")
    parser.add_argument("--select", action="append", metavar="CODES", help="only these codes or prefixes (TE0,TE002)")
    parser.add_argument("--extend-select", action="append", metavar="CODES", help="add codes (e.g. TE081)")
    parser.add_argument("--ignore", action="append", metavar="CODES", help="codes or prefixes to skip (ALL: every)")
    parser.add_argument("--exclude", action="append", metavar="PATTERNS", help="replace the default excludes")
    parser.add_argument("--extend-exclude", action="append", metavar="PATTERNS", help="more files/folders to skip")
    parser.add_argument("--no-respect-gitignore", action="store_true", help="lint files .gitignore ignores too")
    parser.add_argument("--format", "--output-format", dest="format", choices=FORMAT_CHOICES, default=None,
                        help="output format (default: text)")
    parser.add_argument("--statistics", action="store_true", help="counts per code instead of each finding")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--fix", action="store_true", help="apply the safe autofixes (TE001, TE002, TE003, TE090)")
    parser.add_argument("--diff", action="store_true", help="print the fixes as a unified diff; write nothing")
    parser.add_argument("--add-noqa", action="store_true", help="add a `# noqa: CODE` comment to each finding")
    parser.add_argument("--config", metavar="PYPROJECT", help="read [tool.traineval] from this file")
    parser.add_argument("--isolated", action="store_true", help="ignore every pyproject.toml")
    parser.add_argument("--jobs", "-j", type=int, metavar="N", help="worker processes (default and most: CPUs)")
    parser.add_argument("--max-file-size", type=int, metavar="BYTES",
                        help="skip larger files with a note (default 10485760; 0: no limit)")
    parser.add_argument("--output-file", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("--stdin-filename", metavar="PATH", help="the name of the file read from stdin (with -)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print the findings only: no summary, no notes")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the text output (auto: on a terminal, NO_COLOR/FORCE_COLOR honoured)")


def _refuse_conflicts(args: argparse.Namespace) -> None:
    from traineval._cli import UsageError

    pairs = [("isolated", "config", "--isolated ignores every config file; drop one of --isolated, --config"),
             ("add_noqa", "fix", "--add-noqa and --fix cannot be combined"),
             ("add_noqa", "diff", "--add-noqa and --diff cannot be combined"),
             ("statistics", "diff", "--statistics and --diff cannot be combined")]
    for a, b, msg in pairs:
        if getattr(args, a) and getattr(args, b):
            raise UsageError(msg)
    if args.stdin_filename and args.paths not in ([], ["-"]):
        raise UsageError("--stdin-filename reads stdin: give no PATH or `-`")
    if "-" in args.paths and args.paths != ["-"]:
        raise UsageError("`-` (stdin) cannot be combined with other paths")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.max_file_size is not None and args.max_file_size < 0:
        raise UsageError(f"--max-file-size must be 0 (no limit) or more, got {args.max_file_size}")


def _config(args: argparse.Namespace, stdin: bool) -> Any:
    from traineval._cli import UsageError
    from traineval.lint.config import find_pyproject, load_config, validate_selector

    start = (args.stdin_filename or ".") if stdin else (args.paths or ["."])[0]
    try:
        if args.isolated:
            cfg = load_config(None)
        else:
            if args.config and not Path(args.config).is_file():
                raise UsageError(f"--config {args.config}: no such file")
            cfg = load_config(Path(args.config) if args.config else find_pyproject(start))
        changes: dict[str, Any] = {}
        for name in ("select", "extend_select", "ignore"):
            codes = _split(getattr(args, name))
            for c in codes:
                validate_selector(c)
            if codes:
                changes[name] = codes if name != "extend_select" else (*cfg.extend_select, *codes)
        if args.exclude:
            changes["exclude"] = _split(args.exclude)
        if args.extend_exclude:
            changes["extend_exclude"] = (*cfg.extend_exclude, *_split(args.extend_exclude))
        if args.no_respect_gitignore:
            changes["respect_gitignore"] = False
        if args.jobs is not None:
            changes["jobs"] = args.jobs
        if args.max_file_size is not None:
            changes["max_file_size"] = args.max_file_size or None
        if not args.isolated and not args.config and cfg.root == ".":
            changes["root"] = str(Path.cwd())
        return replace(cfg, **changes)
    except TraineValValueError as exc:
        raise UsageError(str(exc)) from None


def run_lint(args: argparse.Namespace) -> int:
    """Run ``traineval lint``; returns the exit code (2 on an internal error, always)."""
    from traineval._cli import EXIT_ERROR, UsageError

    try:
        return _run(args)
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug of ours: one line, exit 2, never "findings"
        print(f"traineval lint: internal error: {type(exc).__name__}: {exc} (please report it)", file=sys.stderr)
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    from traineval._cli import EXIT_ERROR, UsageError
    from traineval.lint.apply import apply_fixes
    from traineval.lint.engine import lint_paths
    from traineval.lint.output import emit

    _refuse_conflicts(args)
    stdin = args.paths == ["-"]
    cfg = _config(args, stdin)
    if args.output_file and not Path(args.output_file).parent.is_dir():
        raise UsageError(f"--output-file {args.output_file}: the folder {Path(args.output_file).parent} does not exist")
    if stdin:
        from traineval.lint.stdin import run_stdin

        return run_stdin(args, cfg)
    paths = args.paths or ["."]
    result = lint_paths(paths, cfg)
    notes = list(result.notes)
    fixed, diffs = 0, []
    if (args.fix or args.diff) and result.fixes:
        applied = apply_fixes(result, paths, write=args.fix and not args.diff)
        notes += applied.notes
        fixed, diffs = applied.fixed, applied.diffs
        if args.fix and not args.diff and applied.files:
            result = lint_paths(paths, cfg)
    if args.add_noqa:
        from traineval.lint.stdin import add_noqa_files

        added, more = add_noqa_files(result)
        notes += more
        if not args.quiet:
            print(f"Added {added} noqa comment{'' if added == 1 else 's'}.", file=sys.stderr)
        result = lint_paths(paths, cfg)
    if not args.quiet:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
    if args.diff:
        sys.stdout.write("".join(diffs))
        if not args.quiet:
            print(f"Would fix {fixed} finding{'' if fixed == 1 else 's'}.", file=sys.stderr)
        return EXIT_ERROR if result.internal else (1 if diffs else 0)
    emit(result.findings, args, cfg, fixed=fixed, files=result.files)
    if result.internal:
        return EXIT_ERROR
    if args.exit_zero:
        return 0
    return 1 if any(f.severity.rank > 0 for f in result.findings) else 0


__all__ = ["configure_lint", "run_lint"]
