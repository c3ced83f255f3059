"""The ``traineval`` command line: ``lint``, ``check``, ``describe``, ``demo``, ``rules``.

Exit codes follow ruff/pytest: 0 clean, 1 findings, 2 usage or internal error.

Each subcommand lives beside the capability it exposes and provides two functions,
``configure(parser)`` (adds its arguments) and ``run(args) -> int``; this module only
wires them up, imports them lazily (``traineval rules`` does not import the linter's
dependencies) and turns expected errors into one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

# name -> (module providing configure/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": ("traineval.contract.cli", "check the eval contract of a model built by MODULE:FACTORY"),
    "describe": ("traineval.cli", "show the mode tree of a model built by MODULE:FACTORY"),
    "rules": ("traineval.cli", "list the diagnostic codes (the catalog)"),
    "lint": ("traineval.lint.cli", "find mode bugs in source files and notebooks (static, never runs them)"),
    "demo": ("traineval.demo.cli", "reproduce the article's claims on train/eval modes: measured, pictured, reported"),
}


class UsageError(Exception):
    """A user mistake on the command line: printed as one line, exit code 2."""


def load_object(spec: str, what: str = "factory") -> Any:
    """Import ``MODULE:NAME`` (``NAME`` may be dotted) and return the object.

    Raises :class:`UsageError` with a one-line message when the module cannot be imported
    or has no such attribute. The current directory is importable, as with ``python -m``.

    >>> load_object("collections:OrderedDict").__name__
    'OrderedDict'
    """
    if ":" not in spec:
        raise UsageError(f"expected MODULE:{what.upper()}, got {spec!r} (e.g. mypkg.models:build)")
    module_name, _, attr = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def build_model(spec: str) -> Any:
    """Import ``MODULE:FACTORY``, call it without arguments, and check it returns an nn.Module."""
    import torch.nn as nn

    factory = load_object(spec)
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise UsageError(f"{spec} is a {type(factory).__name__}, not a callable factory")
    try:
        model = factory()
    except Exception as exc:
        raise UsageError(f"calling {spec}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec}() returned {type(model).__name__}, expected an nn.Module")
    return model


# ---------------------------------------------------------------------------- describe
def configure_describe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="callable returning the model, e.g. traineval.examples:small_resnet")
    parser.add_argument("--mode", choices=("as-built", "train", "eval"), default="as-built",
                        help="describe the model as the factory returns it (default), or after train()/eval()")
    parser.add_argument("--sensitive-only", action="store_true",
                        help="show only mode-sensitive modules and their ancestors")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run_describe(args: argparse.Namespace) -> int:
    from traineval.core.tree import describe

    model = build_model(args.factory)
    if args.mode != "as-built":
        model.train(args.mode == "train")
    report = describe(model)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_rich_or_plain(report, report.render(sensitive_only=args.sensitive_only),
                             use_rich=not args.sensitive_only)
        for d in report.findings:
            print(f"{d.where or '<model>'}: {d.code} [{d.severity.value}] {d.message}\n    fix: {d.fix}")
    return EXIT_CLEAN if report.ok else EXIT_FINDINGS


def _print_rich_or_plain(obj: Any, plain: str, *, use_rich: bool = True) -> None:
    """Print with rich (colours) on a terminal when rich is installed, else plain text."""
    if use_rich and sys.stdout.isatty():
        try:
            from rich.console import Console
        except ImportError:
            pass
        else:
            Console().print(obj)
            return
    print(plain)


# ------------------------------------------------------------------------------- rules
def configure_rules(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", help="show one code in full (e.g. TE002)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")


def run_rules(args: argparse.Namespace) -> int:
    from traineval.catalog import all_rules, get_rule, render_markdown

    if args.code:
        try:
            rules = [get_rule(args.code)]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        rules = all_rules()
    if args.format == "json":
        print(json.dumps([_rule_dict(r) for r in rules], indent=2))
    elif args.format == "markdown" or args.code:
        print("\n".join(render_markdown(r) for r in rules))
    else:
        width = max((len(r.name) for r in rules), default=0)
        for r in rules:
            off = "" if r.default_enabled else "  (off by default)"
            print(f"{r.code}  {r.name:<{width}}  {r.severity.value:<7}  {r.summary.split('. ')[0].rstrip('.')}{off}")
    return EXIT_CLEAN


def _rule_dict(rule: Any) -> dict[str, Any]:
    return {
        "code": rule.code,
        "name": rule.name,
        "severity": rule.severity.value,
        "message": rule.message,
        "fix": rule.fix,
        "summary": rule.summary,
        "default_enabled": rule.default_enabled,
        "fixable": rule.fixable,
        "doc": rule.doc_path,
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
        getattr(module, f"configure_{name}", getattr(module, "configure", None))(p)
        p.set_defaults(_run=getattr(module, f"run_{name}", getattr(module, "run", None)))
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``traineval`` executable; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
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
