"""The ``traineval`` command line: the dispatcher of ``lint``, ``check``, ``describe``, ``demo``,
``rules`` and ``rule``.

Exit codes follow ruff/pytest: 0 clean, 1 findings, 2 usage or internal error.

Each subcommand lives in the folder of the capability it exposes and provides two functions,
``configure(parser)`` (adds its arguments) and ``run(args) -> int``. This module only wires
them up, imports only the one that runs (``traineval rules`` and ``traineval lint`` never
import torch), and turns expected errors into one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from traineval._cli import EXIT_CLEAN, EXIT_ERROR, UsageError

# name -> (module providing configure/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("traineval.contract.cli", "check the eval contract of a model built by MODULE:FACTORY"),
    "describe": ("traineval.core.cli", "show the mode tree of a model built by MODULE:FACTORY"),
    "rules": ("traineval.catalog.cli", "list the diagnostic codes (the catalog)"),
    "rule": ("traineval.catalog.cli", "show the documentation of one diagnostic code, e.g. traineval rule TE007"),
    "lint": ("traineval.lint.cli", "find mode bugs in source files and notebooks (static, never runs them)"),
    "demo": ("traineval.demo.cli", "reproduce the article's claims on train/eval modes: measured, pictured, reported"),
}


# --------------------------------------------------------------------------------- main
def make_parser(only: str | None = "*") -> argparse.ArgumentParser:
    """The argument parser. ``only`` names the one subcommand whose module is imported and
    whose arguments are configured (``"*"``: all of them, ``None``: none — enough for
    ``--help``/``--version``). Importing only what runs keeps ``traineval lint`` and
    ``traineval rules`` from importing torch.
    """
    from traineval import __version__

    parser = argparse.ArgumentParser(
        prog="traineval",
        description="PyTorch's train/eval mode system: lint, check, describe, demo.",
    )
    parser.add_argument("--version", action="version", version=f"traineval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only not in ("*", name):
            continue
        module = importlib.import_module(module_name)
        # a module serving several subcommands names its functions configure_<name>/run_<name>
        (getattr(module, f"configure_{name}", None) or module.configure)(p)
        p.set_defaults(_run=getattr(module, f"run_{name}", None) or module.run)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``traineval`` executable; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        from traineval.errors import TORCH_HINT, is_missing_torch

        if not is_missing_torch(exc):
            raise
        print(f"traineval {_chosen_command(argv)}: error: {TORCH_HINT}", file=sys.stderr)
        return EXIT_ERROR


def _main(argv: list[str]) -> int:
    parser = make_parser(only=_chosen_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(args._run(args))
    except UsageError as exc:
        print(f"traineval {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
