"""State shared by the probes of one ``te.check`` call, and how outputs are compared (private)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from traineval.contract._outputs import difference
from traineval.contract._probes import Divergence, Namer
from traineval.contract._state import StateLedger
from traineval.contract.report import StatGap
from traineval.errors import TraineValValueError

SEED_A, SEED_B = 20240917, 7_000_003
GAP_NOISE = 4.0  # a gap must exceed GAP_NOISE standard errors of the batch estimate to count
SCALE_LIMIT = 2.0  # batch std more than 2x (or under 1/2x) the running std


class Session:
    """State shared by the probes of one :func:`check` call."""

    def __init__(self, model: nn.Module, n: int, selected: torch.Tensor, atol: float | None,
                 rtol: float | None, gap_threshold: float | None) -> None:
        self.model = model
        self.n = n
        self.selected = selected
        self.atol, self.rtol = atol, rtol
        self.gap_threshold = gap_threshold
        self.namer = Namer(model)
        self.ledger = StateLedger()
        self.ref: dict[Any, Any] = {}
        self.dims: dict[Any, int] = {}
        self.gaps: dict[str, StatGap] = {}

    def on_ref_call(self, module: nn.Module, path: str, args: tuple[Any, ...]) -> None:
        """Measure the statistics gap of a BatchNorm running in eval in the reference forward."""
        if self.gap_threshold is None or path in self.gaps or module.training or not self.namer.registered(module):
            return
        if not isinstance(module, nn.modules.batchnorm._BatchNorm) or module.running_mean is None:
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None or x.dim() < 2 or x.shape[1] != module.running_mean.numel() or x.numel() == 0:
            return
        self.gaps[path] = _stat_gap(module, path, x, self.gap_threshold)


def _stat_gap(bn: nn.modules.batchnorm._BatchNorm, path: str, x: torch.Tensor, threshold: float) -> StatGap:
    dims = [0, *range(2, x.dim())]
    x64 = x.detach().double()
    mean, var = x64.mean(dims), x64.var(dims, unbiased=False)
    rm, rv = bn.running_mean.detach().double(), bn.running_var.detach().double()  # type: ignore[union-attr]  # only called for BatchNorm that tracks running stats
    std = (rv + bn.eps).sqrt()
    z = (mean - rm).abs() / std
    log_ratio = ((var + bn.eps) / (rv + bn.eps)).log() / 2
    m = x.numel() // x.shape[1]
    mean_shift = float(z.pow(2).mean().sqrt())
    scale_gap = float(log_ratio.pow(2).mean().sqrt().exp())
    tracked = getattr(bn, "num_batches_tracked", None)
    never = bool(tracked is not None and int(tracked) == 0 and bool((rm == 0).all()) and bool((rv == 1).all()))
    flagged = never or mean_shift > max(threshold, GAP_NOISE / math.sqrt(m)) or (
        math.log(scale_gap) > max(math.log(SCALE_LIMIT), GAP_NOISE / math.sqrt(2 * m)))
    return StatGap(path, type(bn).__name__, mean_shift, scale_gap, m, never, flagged)


def pairs(got: list[tuple[str, Any]], ref: list[tuple[str, Any]], what: str) -> list[tuple[Any, Any]]:
    if [p for p, _ in got] != [p for p, _ in ref]:
        raise TraineValValueError(
            f"the output of {what} does not have the structure of the batch's output "
            f"({[p for p, _ in got][:6]} vs {[p for p, _ in ref][:6]}); pass forward= returning comparable tensors")
    return list(zip(got, ref, strict=True))


def compare_outputs(got: list[tuple[str, Any]], ref: list[tuple[str, Any]], s: Session) -> tuple[str, float] | None:
    got_paths = {p for p, _ in got}
    for path, _ in ref:
        if path not in got_paths:
            return path, math.inf
    for (path, a), (_, b) in zip(got, ref, strict=False):
        delta = difference(a, b, s.atol, s.rtol)
        if delta is not None:
            return path, delta
    return None


def earlier(a: Divergence | None, b: Divergence | None) -> Divergence | None:
    if a is None:
        return b
    if b is None:
        return a
    return b if b.order < a.order else a


# ---------------------------------------------------------------------------- training mode
