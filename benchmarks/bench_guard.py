"""Overhead of ``te.guard`` on training steps, per rule family, side by side in one run.

    python benchmarks/bench_guard.py [--steps 40] [--models cnn,transformer] [--threads N] [--clock cpu|wall]

For each model one training step is forward + cross-entropy + backward + SGD step. Every
configuration is measured on the *same* model and optimizer, interleaved round by round with
the unguarded baseline (the configuration's guard is resumed just before its step and
suspended just after, so the baseline runs with no traineval hook installed at all and the
order rotates every round against drift). By default the clock is the process's CPU time
and torch uses one thread: the guard's cost is Python work on the calling thread, which
more threads would only hide, and CPU time is not inflated by other jobs on a shared machine
(``--clock wall --threads N`` for elapsed time). Reported: the median step time of each
configuration, its ratio to the baseline median, the median of per-round ratios, and the
guard's absolute cost per step ("cost us": median of per-round differences, measured on batch-2
steps where noise is small, since the guard's work does not depend on the batch size) with
its share of the real step ("cost %"). On a busy machine the ratios carry the noise shown by
``baseline-2``; the cost columns resolve well below 1%.

Configurations (``te.guard(model, optimizer, rules=..., tracing=...)``):

* ``default``        every TE1xx rule, ``tracing="auto"`` (what ``te.guard(model, opt)`` does)
* ``modes``          TE101/TE102/TE106: one root pre-hook, step hooks
* ``batchnorm``      TE105: the BatchNorm layers' input shapes
* ``tracing-auto``   TE103/TE104 as shipped: interception only in forwards with a module in eval
* ``tracing-always`` TE103/TE104 intercepting every forward (global module hooks + TorchFunctionMode)

``baseline-2`` is a second unguarded run measured the same way: its distance from 1.0 is the
noise floor of the machine. A validation forward (eval, ``no_grad``) is measured too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te
import traineval.examples as ex

CONFIGS: dict[str, dict[str, object]] = {
    "default": {},
    "modes": {"rules": ["modes"]},
    "batchnorm": {"rules": ["batchnorm"]},
    "tracing-auto": {"rules": ["tracing"]},
    "tracing-always": {"rules": ["tracing"], "tracing": "always"},
}


def build(kind: str, batch: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    if kind == "cnn":
        return ex.small_resnet(), torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if kind == "transformer":
        return ex.transformer_classifier(), torch.randint(0, 100, (batch, 64)), torch.randint(0, 4, (batch,))
    raise SystemExit(f"unknown model {kind!r}: use cnn or transformer")


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def timed(fn: Callable[[], object]) -> float:
    start = clock()
    fn()
    return clock() - start


def measure(kind: str, batch: int, steps: int, warmup: int = 3) -> dict[tuple[str, str], list[float]]:
    """Per (phase, configuration), the step times of every timed round (seconds)."""
    model, x, y = build(kind, batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def eval_forward() -> None:
        with torch.no_grad():
            model(x)

    guards = {name: te.guard(model, opt, on=lambda d: None, **kw) for name, kw in CONFIGS.items()}  # type: ignore[arg-type]
    for g in guards.values():
        g._uninstall()  # suspended; resumed only around its own steps

    times: dict[tuple[str, str], list[float]] = {}
    for phase, fn in (("train step", train_step), ("eval forward", eval_forward)):
        model.train(phase == "train step")
        order = ["baseline", "baseline-2", *CONFIGS]  # baseline-2: a second unguarded run (noise floor)
        for i in range(warmup + steps):
            rotated = order[i % len(order):] + order[: i % len(order)]
            for name in rotated:
                g = guards.get(name)
                if g is not None:
                    g._install()
                t = timed(fn)
                if g is not None:
                    g._uninstall()
                if i >= warmup:
                    times.setdefault((phase, name), []).append(t)
    for g in guards.values():
        g.remove()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed rounds per configuration (>= 20)")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the timed steps (default 32)")
    parser.add_argument("--models", default="cnn,transformer")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: process CPU time, robust on a shared machine (default); wall: elapsed time")
    args = parser.parse_args()
    if args.steps < 20:
        raise SystemExit("--steps must be at least 20 (medians of fewer steps are noise)")
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock, "
          f"{args.steps} rounds, medians; batch {args.batch} (absolute cost: batch 2, {4 * args.steps} rounds)")
    print(f"{'model':<12} {'phase':<13} {'configuration':<15} {'median ms':>10} {'ratio':>7} {'paired':>7}"
          f" {'cost us':>8} {'cost %':>7}")
    for kind in args.models.split(","):
        big = measure(kind, args.batch, args.steps)
        # The guard's work does not grow with the batch: measure it in absolute terms where the
        # step is small (so the noise, proportional to the step, is small), then relate it to
        # the real step. cost us = median over rounds of (configuration - baseline), batch 2.
        small = measure(kind, 2, 4 * args.steps)
        for (phase, name), values in big.items():
            base = big[(phase, "baseline")]
            med, base_med = statistics.median(values), statistics.median(base)
            paired = statistics.median(t / b for t, b in zip(values, base, strict=True))
            extra = statistics.median(
                t - b for t, b in zip(small[(phase, name)], small[(phase, "baseline")], strict=True)
            )
            print(f"{kind:<12} {phase:<13} {name:<15} {med * 1e3:>10.2f} {med / base_med:>7.4f} {paired:>7.4f}"
                  f" {extra * 1e6:>8.0f} {100 * extra / base_med:>6.2f}%")


if __name__ == "__main__":
    main()
