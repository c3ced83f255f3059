"""``traineval lint [PATH ...]`` — the command line, with ruff's habits.

Exit codes: 0 nothing to report (or ``--exit-zero``, or only ``info`` findings), 1 errors
or warnings, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from traineval.errors import TraineValValueError


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for v in values or []:
        out += [c.strip() for c in v.split(",") if c.strip()]
    return tuple(out)


def configure_lint(parser: argparse.ArgumentParser) -> None:
    """Add the ``lint`` options to ``parser``."""
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to lint (default: .)")
    parser.add_argument("--select", action="append", metavar="CODES", help="only these codes or prefixes (TE0,TE002)")
    parser.add_argument("--extend-select", action="append", metavar="CODES", help="add codes (e.g. TE081)")
    parser.add_argument("--ignore", action="append", metavar="CODES", help="codes or prefixes to skip")
    parser.add_argument("--exclude", action="append", metavar="PATTERNS", help="replace the default excludes")
    parser.add_argument("--extend-exclude", action="append", metavar="PATTERNS", help="more files/folders to skip")
    parser.add_argument("--no-respect-gitignore", action="store_true", help="lint files .gitignore ignores too")
    parser.add_argument("--format", choices=("text", "json", "sarif", "github"), default=None,
                        help="output format (default: text)")
    parser.add_argument("--statistics", action="store_true", help="counts per code instead of each finding")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--fix", action="store_true", help="apply the safe autofixes (TE001, TE002, TE003, TE090)")
    parser.add_argument("--config", metavar="PYPROJECT", help="read [tool.traineval] from this file")
    parser.add_argument("--isolated", action="store_true", help="ignore every pyproject.toml")
    parser.add_argument("--jobs", "-j", type=int, metavar="N", help="worker processes (default: CPUs, 1 = serial)")
    parser.add_argument("--output-file", "-o", metavar="FILE", help="write the report to FILE instead of stdout")


def _config(args: argparse.Namespace) -> object:
    from traineval._cli import UsageError
    from traineval.lint.config import find_pyproject, load_config, validate_selector

    paths = args.paths or ["."]
    try:
        if args.isolated:
            cfg = load_config(None)
        else:
            pyproject = Path(args.config) if args.config else find_pyproject(paths[0])
            if args.config and not Path(args.config).is_file():
                raise UsageError(f"--config {args.config}: no such file")
            cfg = load_config(pyproject)
        changes: dict[str, object] = {}
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
            if args.jobs < 1:
                raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
            changes["jobs"] = args.jobs
        if not args.isolated and not args.config and cfg.root == ".":
            changes["root"] = str(Path.cwd())
        return replace(cfg, **changes)
    except TraineValValueError as exc:
        raise UsageError(str(exc)) from None


def run_lint(args: argparse.Namespace) -> int:
    """Run ``traineval lint``; returns the exit code."""
    from traineval._console import use_color
    from traineval.lint.engine import lint_paths
    from traineval.lint.fixes import fix_file
    from traineval.lint.report import render

    cfg = _config(args)
    paths = args.paths or ["."]
    result = lint_paths(paths, cfg)  # type: ignore[arg-type]
    fixed = 0
    if args.fix and result.edits:
        for path, edits in sorted(result.edits.items()):
            fixed += fix_file(path, edits)
        result = lint_paths(paths, cfg)  # type: ignore[arg-type]
    fmt = args.format or getattr(cfg, "format", None) or "text"
    out = sys.stdout
    color = fmt == "text" and not args.output_file and use_color(out)
    text = render(result.findings, fmt, color=color, statistics=args.statistics, fixed=fixed, files=result.files)
    if args.output_file:
        Path(args.output_file).write_text(text + "\n", encoding="utf-8")
    elif text:
        print(text)
    if args.exit_zero:
        return 0
    return 1 if any(f.severity.rank > 0 for f in result.findings) else 0
