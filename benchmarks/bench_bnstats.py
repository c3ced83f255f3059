"""te.recalibrate_batchnorm against its peers: speed, exactness, and test accuracy.

Run: ``python benchmarks/bench_bnstats.py [--repeats 5] [--quick]`` (CPU; fvcore optional:
``pip install -c constraints/dev.txt fvcore``). Prints three tables:

1. wall time over the same batches, median of ``--repeats`` interleaved runs, as ratios:
   ours / a bare train-mode ``no_grad`` forward, ours / fvcore ``update_bn_stats``,
   ours / ``torch.optim.swa_utils.update_bn`` — on a ResNet-style CNN and an MLP;
2. max relative error of running_mean / running_var against float64 truth (each tool's own
   layer inputs, recorded by a hook and concatenated), batches of unequal size;
3. test accuracy of a small CNN with BatchNorm and Dropout trained with batches of 8 (and 32)
   on synthetic data made here: EMA statistics vs recalibrated ones (median over seeds).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn as nn

import traineval as te
import traineval.examples as ex

try:
    from fvcore.nn.precise_bn import update_bn_stats
except ImportError:  # pragma: no cover - optional
    update_bn_stats = None


# ------------------------------------------------------------------------------ the tools
def run_ours(model: nn.Module, batches: list[torch.Tensor], **kw) -> None:
    te.recalibrate_batchnorm(model, batches, progress=False, **kw)


def run_fvcore(model: nn.Module, batches: list[torch.Tensor]) -> None:
    model.train()  # fvcore leaves modes to the caller; the documented use is train mode
    update_bn_stats(model, batches, num_iters=len(batches))


def run_swa(model: nn.Module, batches: list[torch.Tensor]) -> None:
    torch.optim.swa_utils.update_bn(batches, model)


def run_bare(model: nn.Module, batches: list[torch.Tensor]) -> None:
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)  # noqa: TE007 - the bare train-mode forward the statistics pass is timed against


TOOLS: dict[str, Callable[[nn.Module, list[torch.Tensor]], None]] = {
    "bare forward": run_bare,
    "traineval": run_ours,
    "fvcore": run_fvcore,
    "swa_utils": run_swa,
}


def workloads(quick: bool) -> dict[str, tuple[Callable[[], nn.Module], list[torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    n = 6 if quick else 10
    cnn = [torch.randn(32 if i % 2 else 19, 3, 32, 32, generator=g) for i in range(n)]
    mlp = [torch.randn(512 if i % 2 else 301, 256, generator=g) for i in range(4 * n)]
    return {
        "ResNet-style CNN": (ex.small_resnet, cnn),
        "MLP": (lambda: ex.mlp(in_features=256, hidden=512), mlp),
    }


def timing(repeats: int, quick: bool) -> None:
    print("\n1. wall time, median of", repeats, "interleaved runs (same batches for everyone)")
    print(f"   {'model':<18} {'tool':<14} {'median s':>9}  ratio ours/tool")
    for label, (factory, batches) in workloads(quick).items():
        base = factory()
        times: dict[str, list[float]] = {k: [] for k in TOOLS}
        for _ in range(repeats):
            for name, fn in TOOLS.items():
                if name == "fvcore" and update_bn_stats is None:
                    continue
                model = copy.deepcopy(base)
                t0 = time.perf_counter()
                fn(model, batches)
                times[name].append(time.perf_counter() - t0)
        ours = statistics.median(times["traineval"])
        for name, values in times.items():
            if not values:
                print(f"   {label:<18} {name:<14} {'n/a':>9}  (fvcore not installed)")
                continue
            med = statistics.median(values)
            ratio = "" if name == "traineval" else f"{ours / med:.3f}"
            print(f"   {label:<18} {name:<14} {med:>9.4f}  {ratio}")


# ---------------------------------------------------------------------------- exactness
def exactness(quick: bool) -> None:
    print("\n2. max relative error vs float64 truth of each layer's own inputs (unequal batches)")
    print(f"   {'model':<18} {'tool':<14} {'running_mean':>13} {'running_var':>13}")
    for label, (factory, batches) in workloads(quick).items():
        for name, fn in TOOLS.items():
            if name == "bare forward" or (name == "fvcore" and update_bn_stats is None):
                continue
            model = factory()
            seen: dict[nn.Module, list[torch.Tensor]] = {}
            handles = [
                m.register_forward_pre_hook(lambda mod, a, seen=seen: seen.setdefault(mod, []).append(a[0].double()))
                for m in model.modules()
                if te.is_norm_with_running_stats(m)
            ]
            fn(model, batches)
            for h in handles:
                h.remove()
            err_m = err_v = 0.0
            for m, xs in seen.items():
                flat = torch.cat([x.movedim(1, 0).reshape(x.shape[1], -1) for x in xs], dim=1)
                mean, var = flat.mean(1), flat.var(1)
                err_m = max(err_m, ((m.running_mean.double() - mean) / mean.abs()).abs().max().item())
                err_v = max(err_v, ((m.running_var.double() - var) / var).abs().max().item())
            print(f"   {label:<18} {name:<14} {err_m:>13.2e} {err_v:>13.2e}")


# ----------------------------------------------------------------------------- accuracy
class SmallCNN(nn.Module):
    """conv-BN-ReLU-Dropout blocks: dropout *before* BatchNorm, where the variance shift bites."""

    def __init__(self, p: float = 0.3, classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Dropout(p))

        self.features = nn.Sequential(block(3, 16, 1), block(16, 32, 2), block(32, 64, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def synthetic(n: int, g: torch.Generator, prototypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy, shifted, rescaled copies of 10 smooth class prototypes (3×16×16)."""
    y = torch.randint(0, prototypes.shape[0], (n,), generator=g)
    x = prototypes[y]
    shift = torch.randint(-2, 3, (2,), generator=g)
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    contrast = torch.rand(n, 1, 1, 1, generator=g) * 1.5 + 0.5
    brightness = torch.randn(n, 1, 1, 1, generator=g) * 0.5
    return x * contrast + brightness + torch.randn(x.shape, generator=g) * 0.8, y


def accuracy(seeds: int, quick: bool) -> None:
    for train_batch in (8, 32):
        accuracy_at(seeds, quick, train_batch)


def accuracy_at(seeds: int, quick: bool, train_batch: int) -> None:
    print(f"\n3. test accuracy, small CNN (BatchNorm + Dropout 0.3), trained with batches of {train_batch}; "
          f"recalibrated with batches of 64 of the training set; median of {seeds} seeds")
    rows: dict[str, list[float]] = {}
    for seed in range(seeds):
        g = torch.Generator().manual_seed(100 + seed)
        protos = nn.functional.interpolate(torch.randn(10, 3, 4, 4, generator=g), size=16, mode="bilinear")
        xtr, ytr = synthetic(1000 if quick else 3000, g, protos)
        xte, yte = synthetic(2000, g, protos)
        torch.manual_seed(seed)
        model = SmallCNN()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        model.train()
        for _epoch in range(2 if quick else 4):
            perm = torch.randperm(len(xtr))
            for i in range(0, len(xtr), train_batch):
                idx = perm[i : i + train_batch]
                loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        recal = [xtr[i : i + 64] for i in range(0, len(xtr), 64)]

        def acc(m: nn.Module, xte: torch.Tensor = xte, yte: torch.Tensor = yte) -> float:
            with te.inference(m):
                return (m(xte).argmax(1) == yte).float().mean().item()

        variants: dict[str, Callable[[nn.Module], None]] = {
            "EMA statistics (PyTorch)": lambda m: None,
            "traineval single-pass, dropout off": lambda m, r=recal: run_ours(m, r),
            "traineval layerwise, dropout off": lambda m, r=recal: run_ours(m, r, order="layerwise"),
            "traineval single-pass, dropout on": lambda m, r=recal: run_ours(m, r, dropout="on"),
            "swa_utils.update_bn": lambda m, r=recal: run_swa(m, r),
        }
        if update_bn_stats is not None:
            variants["fvcore update_bn_stats"] = lambda m, r=recal: run_fvcore(m, r)
        for name, fn in variants.items():
            m = copy.deepcopy(model)
            fn(m)
            rows.setdefault(name, []).append(acc(m))
    print(f"   {'statistics':<38} {'median acc':>10}   per seed")
    for name, values in rows.items():
        print(f"   {name:<38} {statistics.median(values):>10.4f}   " + " ".join(f"{v:.4f}" for v in values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fvcore "
          f"{'installed' if update_bn_stats is not None else 'NOT installed'}", file=sys.stderr)
    timing(args.repeats, args.quick)
    exactness(args.quick)
    accuracy(args.seeds, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
