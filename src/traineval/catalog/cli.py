"""``traineval rules`` (the catalog, one line a code) and ``traineval rule CODE`` (one code's page)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from traineval._cli import EXIT_CLEAN, UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", help="show one code in full (e.g. TE002)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")


def run(args: argparse.Namespace) -> int:
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


def configure_rule(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", help="the code, e.g. TE007")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")


def run_rule(args: argparse.Namespace) -> int:
    return run(args)
