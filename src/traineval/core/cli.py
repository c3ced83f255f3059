"""``traineval describe MODULE:FACTORY``: the mode tree of a model, with its findings."""

from __future__ import annotations

import argparse
import json

from traineval._cli import EXIT_CLEAN, EXIT_FINDINGS, build_model, print_rich_or_plain


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="callable returning the model, e.g. traineval.examples:small_resnet")
    parser.add_argument("--mode", choices=("as-built", "train", "eval"), default="as-built",
                        help="describe the model as the factory returns it (default), or after train()/eval()")
    parser.add_argument("--sensitive-only", action="store_true",
                        help="show only mode-sensitive modules and their ancestors")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (as `lint`)")
    parser.add_argument("--json", action="store_true", help="the same as --format json")


def run(args: argparse.Namespace) -> int:
    from traineval.core.tree import describe

    model = build_model(args.factory)
    if args.mode != "as-built":
        model.train(args.mode == "train")
    report = describe(model)
    if args.json or args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_rich_or_plain(report, report.render(sensitive_only=args.sensitive_only),
                             use_rich=not args.sensitive_only)
        for d in report.findings:
            print(f"{d.where or '<model>'}: {d.code} [{d.severity.value}] {d.message}\n    fix: {d.fix}")
    return EXIT_CLEAN if report.ok else EXIT_FINDINGS
