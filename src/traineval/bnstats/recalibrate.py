"""Population ("precise") BatchNorm statistics: :func:`recalibrate_batchnorm`.

PyTorch's BatchNorm does not keep the statistics of the training data: it keeps an
exponential moving average (``momentum=0.1``) of per-batch statistics, taken on weights that
were still moving. Recomputing the statistics of every value each layer receives, with the
weights fixed, is "PreciseBN" (Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021, Sec. 3).

>>> import torch, traineval as te, traineval.examples as ex
>>> model = ex.mlp()
>>> batches = [torch.randn(n, 20) for n in (32, 32, 7)]      # unequal sizes are weighted right
>>> report = te.recalibrate_batchnorm(model, batches, progress=False)
>>> report.layers[0].samples                                  # every value of the pass counts
71
>>> model.training, model[3].training                         # modes are left as they were
(True, True)
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import torch
import torch.nn as nn

from traineval import _torch
from traineval.bnstats._layerwise import LayerwiseRun
from traineval.bnstats._safety import StateSnapshot, sweep_hooks
from traineval.bnstats._stats import Layer
from traineval.bnstats.report import LayerRecalibration, RecalibrationReport
from traineval.core.modes import ModeSnapshot
from traineval.core.sensitivity import is_norm_with_running_stats
from traineval.errors import (
    TraineValTypeError,
    TraineValValueError,
    TraineValWarning,
    describe_value,
    require_module,
)
from traineval.runtime.allow import allow

__all__ = ["LayerRecalibration", "RecalibrationReport", "recalibrate_batchnorm"]

_DROPOUT = ("off", "on")
_ORDERS = ("single-pass", "layerwise")


# -------------------------------------------------------------------------- the public call
def recalibrate_batchnorm(
    model: nn.Module,
    data: Iterable[Any],
    *,
    num_batches: int | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    dropout: Literal["off", "on"] = "off",
    order: Literal["single-pass", "layerwise"] = "single-pass",
    progress: bool = True,
    check_finite: bool = True,
) -> RecalibrationReport:
    """Set every BatchNorm's running statistics to the exact mean and variance of its inputs over ``data``.

    Each layer's ``running_mean``/``running_var`` become the mean and unbiased variance of
    every value it received in the pass, pooled in float64 (unequal batches weigh by size,
    positions count as samples, a layer called twice pools both calls). Modes, parameters and
    momentum are left as they were; on any failure or interrupt every buffer and mode is
    restored. Layers a policy or ``train()`` override keeps in eval are left alone. Under
    ``torch.distributed`` every rank ends with the statistics of the union of the shards.
    The full account (conventions, layer-wise cost, distributed rules) is in docs/bnstats.md.

    Args:
        model: the model (only the normalisation statistics change).
        data: an iterable of batches: tensors, tuples/lists (the first element is fed),
            dicts (fed as keyword arguments), or anything ``forward`` understands.
        num_batches: use at most this many batches (per pass and per rank).
        forward: ``forward(model, batch)`` runs the model on one batch.
        dropout: ``"off"`` (the modes ``model.eval()`` gives) or ``"on"`` (training modes elsewhere).
        order: ``"single-pass"`` (one pass, upstream layers use batch statistics) or
            ``"layerwise"`` (level by level, upstream layers use their new statistics).
        progress: show a progress bar when stderr is a terminal.
        check_finite: raise (naming the layer and the batch, model unchanged) when a layer
            receives NaN or inf; ``False`` pools such values into the statistics.

    Returns:
        A :class:`RecalibrationReport`: per layer the samples, calls, mean shift (in old
        standard deviations) and new/old variance ratio; layers not reached; frozen layers;
        the cost in forward-equivalents.

    >>> import torch, traineval as te, traineval.examples as ex
    >>> model = ex.small_resnet()
    >>> data = [(torch.randn(8, 3, 32, 32), torch.zeros(8)) for _ in range(3)]   # (input, label)
    >>> report = te.recalibrate_batchnorm(model, data, progress=False)
    >>> len(report.layers), report.layers[0].samples                # 3 batches × 8 × 32 × 32
    (9, 24576)
    >>> report = te.recalibrate_batchnorm(model, data, order="layerwise", progress=False)
    >>> report.rounds, report.forward_equivalents > 3               # one round per depth level
    (7, True)
    """
    require_module(model)
    if dropout not in _DROPOUT:
        raise TraineValValueError(f"dropout must be 'off' or 'on', got {describe_value(dropout)}")
    if order not in _ORDERS:
        raise TraineValValueError(f"order must be 'single-pass' or 'layerwise', got {describe_value(order)}")
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1
    ):
        raise TraineValValueError(f"num_batches must be a positive int or None, got {describe_value(num_batches)}")
    if forward is not None and not callable(forward):
        raise TraineValTypeError(
            f"forward must be a callable forward(model, batch), got {describe_value(forward)}"
        )
    if isinstance(data, (torch.Tensor, str, bytes)) or not isinstance(data, Iterable):
        raise TraineValTypeError(
            f"data must be an iterable of batches (a DataLoader, a list of tensors), got {describe_value(data)}"
            + (" — wrap a single batch in a list: [batch]" if isinstance(data, torch.Tensor) else "")
        )
    if order == "layerwise" and isinstance(data, Iterator):
        raise TraineValValueError(
            "order='layerwise' iterates the data several times; pass a re-iterable "
            "(a list, a DataLoader), not an iterator or generator"
        )
    inner = _torch.unwrap(model)
    kind = _torch.fsdp_kind(inner)
    if kind is not None:
        raise TraineValValueError(
            f"recalibrate_batchnorm does not support FSDP ({kind}): its forward all-gathers the "
            "sharded parameters on every batch, a collective per batch that deadlocks when ranks "
            "have different numbers of batches (this function issues none), and each rank holds "
            "only a shard to run the model alone; recalibrate the unsharded model (e.g. on one "
            "rank, before wrapping or after gathering a full state dict) and load its buffers"
        )
    lazy = [
        n for n, t in itertools.chain(inner.named_parameters(), inner.named_buffers()) if nn.parameter.is_lazy(t)
    ]
    if lazy:
        raise TraineValValueError(
            f"the model has uninitialised lazy parameters/buffers ({', '.join(lazy[:3])}); "
            "run one forward pass first (e.g. model(example_batch)) so they take their shapes"
        )
    norms = [(name, m) for name, m in inner.named_modules() if is_norm_with_running_stats(m)]
    dist, _rank, world = _torch.distributed()
    if not norms:
        warnings.warn(
            "recalibrate_batchnorm: the model has no normalisation layer with running statistics; nothing to do",
            TraineValWarning,
            stacklevel=2,
        )
        return RecalibrationReport(order=order, dropout=dropout, world_size=world)

    saved = StateSnapshot(inner)
    snapshot = ModeSnapshot((model,))
    layers: list[Layer] = []
    frozen: list[str] = []
    try:
        with torch.no_grad():
            # Which norm layers does training itself keep in eval (policies, train() overrides)?
            inner.train(True)
            for name, m in norms:
                if m.training:
                    layers.append(Layer(name, m))
                else:
                    frozen.append(name)
            if dropout == "off":
                inner.train(False)  # the modes inference sees
            for layer in layers:
                layer.module.training = not layer.substitute
            run = LayerwiseRun(inner, data, num_batches, forward, layers, progress, dist)
            run.check_finite = bool(check_finite)
            if layers:
                with allow():  # the runtime guard's TE1xx checks: this pass is intended
                    if order == "single-pass":
                        run.single_pass()
                    else:
                        run.layerwise()
            report = run.report(frozen, order, dropout, world)
        sweep_hooks(inner)
        snapshot.restore()  # interrupted here too, the call is undone as a whole
    except BaseException:
        _undo(inner, layers, saved, snapshot)
        raise
    return report


def _undo(inner: nn.Module, layers: list[Layer], saved: StateSnapshot, snapshot: ModeSnapshot) -> None:
    """Put buffers, RNG, hooks and modes back. Every step is idempotent, so an interrupt that
    arrives during the undo (a second Ctrl-C) restarts it; the third one is let through."""
    for attempt in range(3):
        try:
            for layer in layers:
                layer.restore()
            saved.restore()
            sweep_hooks(inner)
            snapshot.restore()
            return
        except KeyboardInterrupt:
            if attempt == 2:
                raise
