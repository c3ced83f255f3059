"""Measuring tools the experiments share: BatchNorm layers and their buffers, forward hooks that record
a layer's input and output, float64 references for normalisation and population statistics."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

import traineval as te

__all__ = [
    "accuracy_at", "binomial_ok", "bn_layers", "buffers", "buffers_equal", "capture", "channel_stats", "chunks",
    "normalise", "population_statistics", "recalibrate", "running", "stats_gap", "tracked",
]


def bn_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """The BatchNorm layers of ``model`` that keep running statistics, by name.

    >>> [name for name, _ in bn_layers(nn.Sequential(nn.BatchNorm1d(2), nn.BatchNorm1d(2, track_running_stats=False)))]
    ['0']
    """
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and m.running_mean is not None
    ]


def running(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn``'s running mean and variance (the tensors themselves, not copies).

    >>> mean, var = running(nn.BatchNorm1d(2))
    >>> mean.tolist(), var.tolist()
    ([0.0, 0.0], [1.0, 1.0])
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{type(bn).__name__} keeps no running statistics (track_running_stats=False)")
    return bn.running_mean, bn.running_var


def tracked(bn: _BatchNorm) -> int:
    """How many training-mode batches ``bn`` has counted (``num_batches_tracked``).

    >>> tracked(nn.BatchNorm1d(2))
    0
    """
    return 0 if bn.num_batches_tracked is None else int(bn.num_batches_tracked)


def buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every buffer of ``model``, by name."""
    return {name: b.detach().clone() for name, b in model.named_buffers()}


def buffers_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two :func:`buffers` snapshots are bit-identical."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def chunks(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """``x`` in consecutive batches of ``batch_size`` (the last one may be smaller).

    >>> [len(b) for b in chunks(torch.zeros(5), 2)]
    [2, 2, 1]
    """
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


def accuracy_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, train: bool) -> float:
    """Accuracy with the model in training (``train=True``) or eval mode, fed ``batch_size`` images at a time.

    ``model``'s modes are restored afterwards; a training-mode pass changes its running statistics.
    """
    correct = 0
    scope = te.training(model) if train else te.evaluating(model)
    with scope, torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def binomial_ok(dropped: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """Whether ``dropped`` of ``n`` is within ``sigmas`` standard deviations of a Binomial(n, p) mean.

    >>> binomial_ok(5_010, 10_000, 0.5), binomial_ok(6_000, 10_000, 0.5)
    (True, False)
    """
    return abs(dropped - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


def capture(
    layers: Sequence[tuple[str, nn.Module]],
) -> tuple[dict[str, dict[str, torch.Tensor]], Callable[[], None]]:
    """Record each layer's input, output and (before the call) running statistics on its next forward.

    Returns the record (float64 copies, by layer name) and a function that removes the hooks.
    """
    seen: dict[str, dict[str, torch.Tensor]] = {}
    handles = []
    for name, layer in layers:

        def pre(mod: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            seen[name] = {"input": args[0].detach().double()}
            if isinstance(mod, _BatchNorm) and mod.running_mean is not None:
                mean, var = running(mod)
                seen[name]["running_mean"] = mean.detach().double().clone()
                seen[name]["running_var"] = var.detach().double().clone()

        def post(mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor, name: str = name) -> None:
            seen[name]["output"] = out.detach().double()

        handles.append(layer.register_forward_pre_hook(pre))
        handles.append(layer.register_forward_hook(post))

    def remove() -> None:
        for h in handles:
            h.remove()

    return seen, remove


def normalise(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, bn: _BatchNorm) -> torch.Tensor:
    """What ``bn`` outputs for ``x`` when it normalises with ``mean`` and ``var``, in float64.

    >>> bn = nn.BatchNorm1d(1, eps=0.0)
    >>> normalise(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0]), torch.tensor([1.0]), bn).tolist()
    [[-1.0], [1.0]]
    """
    shape = (1, -1) + (1,) * (x.dim() - 2)
    w = bn.weight.detach().double().view(shape)
    b = bn.bias.detach().double().view(shape)
    return (x.double() - mean.view(shape)) / torch.sqrt(var.view(shape) + bn.eps) * w + b


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean and biased variance over every axis but 1, in float64, and the count.

    >>> mean, var, n = channel_stats(torch.tensor([[0.0], [2.0]]))
    >>> mean.tolist(), var.tolist(), n
    ([1.0], [1.0], 2)
    """
    flat = x.double().transpose(0, 1).reshape(x.shape[1], -1)
    return flat.mean(1), flat.var(1, unbiased=False), flat.shape[1]


def population_statistics(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The true whole-data statistics of every BatchNorm input: mean and unbiased variance, float64.

    The reference is computed another way than any recalibration routine: a float64 copy of
    the model is run once in training mode on *all* of ``x`` as one batch, so that each
    BatchNorm normalises with the whole-data statistics of its input — the statistics an
    eval-mode model should hold — and each layer's input is recorded. ``model`` is untouched.
    (Upstream layers normalise with the biased whole-data variance, eval mode with the unbiased
    one: a relative difference of 1/n for n values per channel.)

    >>> model = nn.Sequential(nn.BatchNorm1d(1))
    >>> mean, var = population_statistics(model, torch.tensor([[0.0], [2.0], [10.0]]))["0"]
    >>> round(float(mean), 4), round(float(var), 4)          # mean 4, unbiased variance 28
    (4.0, 28.0)
    """
    ref = copy.deepcopy(model).double()
    layers = bn_layers(ref)
    seen, remove = capture(layers)
    try:
        with te.training(ref), torch.no_grad():
            ref(x.double())  # noqa: TE007 - one training-mode pass over all the data is the float64 reference
    finally:
        remove()
    stats = {}
    for name, _ in layers:
        mean, var, count = channel_stats(seen[name]["input"])
        stats[name] = (mean, var * count / (count - 1))  # unbiased, as BatchNorm's running_var
    return stats


def stats_gap(
    model: nn.Module, population: dict[str, tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, dict[str, float]]:
    """Per layer: mean |running − population| of the mean in population-std units, and of the variance as a ratio.

    >>> model = nn.Sequential(nn.BatchNorm1d(1))                  # running mean 0, running variance 1
    >>> stats_gap(model, {"0": (torch.tensor([0.5]), torch.tensor([4.0]))})
    {'0': {'mean_gap_std': 0.25, 'var_gap_rel': 0.75}}
    """
    gaps = {}
    for name, bn in bn_layers(model):
        pm, pv = population[name]
        rm, rv = (t.detach().double() for t in running(bn))
        gaps[name] = {
            "mean_gap_std": float(((rm - pm).abs() / pv.clamp_min(1e-12).sqrt()).mean()),
            "var_gap_rel": float(((rv / pv.clamp_min(1e-12)) - 1).abs().mean()),
        }
    return gaps


def recalibrate(
    model: nn.Module, batches: list[torch.Tensor], order: Literal["layerwise", "single-pass"] = "layerwise"
) -> te.RecalibrationReport:
    """Replace ``model``'s running statistics by population statistics with ``te.recalibrate_batchnorm``."""
    return te.recalibrate_batchnorm(model, batches, order=order, progress=False)
