"""``traineval check MODULE:FACTORY (--example MODULE:FN | --input-shape 8,3,32,32) [--json]`` (private).

Exit codes: 0 the eval contract holds (warnings and info allowed), 1 an error-level violation,
2 a usage error (bad spec, a factory that raises, an example traineval cannot use).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from traineval._cli import EXIT_CLEAN, EXIT_FINDINGS, UsageError, build_model, load_object


def configure_check(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` arguments to ``parser``."""
    parser.add_argument("model", metavar="MODULE:FACTORY", help="a function returning the model (or the model)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--example", metavar="MODULE:FN",
                        help="a function returning the example batch (tensor, tuple or dict), or the batch itself")
    source.add_argument("--input-shape", metavar="SHAPE",
                        help="random example of this shape, e.g. 8,3,32,32 (the BatchNorm gap is then not measured)")
    parser.add_argument("--integers", type=int, metavar="HIGH",
                        help="with --input-shape: random integer ids in [0, HIGH) instead of normal floats")
    parser.add_argument("--forward", metavar="MODULE:FN", help="call FN(model, example) instead of model(example)")
    parser.add_argument("--batch-dim", type=int, default=0, help="batch dimension of the inputs (default 0)")
    parser.add_argument("--samples", type=int, default=4, help="samples checked alone (default 4)")
    parser.add_argument("--atol", type=float, help="absolute tolerance (default: by dtype)")
    parser.add_argument("--rtol", type=float, help="relative tolerance (default: by dtype)")
    parser.add_argument("--gap-threshold", type=float, default=1.0,
                        help="BatchNorm mean shift, in running std, that counts as stale (default 1.0)")
    parser.add_argument("--no-train-checks", action="store_true", help="skip the two training-mode forwards")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (as `lint`)")
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when the contract is violated")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--input-shape expects comma-separated sizes such as 8,3,32,32, got {text!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise UsageError(f"--input-shape expects positive sizes such as 8,3,32,32, got {text!r}")
    return shape


def _example(args: argparse.Namespace) -> Any:
    import torch

    if args.example:
        obj = load_object(args.example, "function")
        if callable(obj) and not isinstance(obj, torch.Tensor):
            try:
                return obj()
            except Exception as exc:
                raise UsageError(f"calling {args.example}() raised {type(exc).__name__}: {exc}") from None
        return obj
    shape = _shape(args.input_shape)
    generator = torch.Generator().manual_seed(0)  # the global RNG is left alone
    if args.integers is not None:
        if args.integers < 1:
            raise UsageError(f"--integers expects a positive upper bound, got {args.integers}")
        return torch.randint(0, args.integers, shape, generator=generator)
    return torch.randn(shape, generator=generator)


def run_check(args: argparse.Namespace) -> int:
    """Run ``traineval check``; returns the exit code."""
    from traineval.contract.check import check
    from traineval.errors import TraineValError

    model = build_model(args.model)
    example = _example(args)
    forward = load_object(args.forward, "function") if args.forward else None
    if forward is not None and not callable(forward):
        raise UsageError(f"{args.forward} is a {type(forward).__name__}, not a function (model, example) -> output")
    random_input = args.input_shape is not None
    try:
        report = check(
            model, example, forward=forward, batch_dim=args.batch_dim, samples=args.samples, atol=args.atol,
            rtol=args.rtol, gap_threshold=None if random_input else args.gap_threshold,
            train_checks=not args.no_train_checks,
        )
    except TraineValError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        raise UsageError(f"the model raised {type(exc).__name__} in forward: {exc}") from None
    if random_input:
        report.notes.append("random input (--input-shape): BatchNorm statistics gap not measured")
    if args.json or args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report)
    return EXIT_FINDINGS if report.errors and not args.exit_zero else EXIT_CLEAN
