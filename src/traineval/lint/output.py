"""Printing the report of ``traineval lint``: format, colour, ``--output-file``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def emit(findings: list[Any], args: argparse.Namespace, cfg: Any, *, fixed: int, files: int,
         sources: dict[str, bytes] | None = None, stream: Any = None) -> None:
    """Render and print (or write to ``--output-file``) the report."""
    from traineval._cli import UsageError
    from traineval._console import use_color
    from traineval.lint.report import render

    fmt = args.format or getattr(cfg, "format", None) or "text"
    out = stream or sys.stdout
    if args.color == "always":
        color = True
    elif args.color == "never":
        color = False
    else:
        color = not args.output_file and use_color(out)
    color = color and fmt in ("text", "grouped")
    text = render(findings, fmt, color=color, statistics=args.statistics, fixed=fixed, files=files,
                  quiet=args.quiet, sources=sources)
    if args.output_file:
        try:
            Path(args.output_file).write_text(text + "\n" if text else "", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output-file {args.output_file}: {exc.strerror or exc}") from None
    elif text:
        print(text, file=out)
