"""Measurements that several claims read: how BatchNorm normalised (C2, C3) and the CNN's dropout (C2, C7).

Each is computed once per :class:`~._context.Context` (:meth:`~._context.Context.shared`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import bn_layers, capture, channel_stats, normalise


def normalisation(ctx: Context) -> dict[str, Any]:
    """Per mode: how far each BatchNorm's output is from batch-statistics and from running-statistics normalisation.

    Also keeps, under ``"plot"``, each BatchNorm's per-channel mean over a training-mode batch, over a
    training-mode batch of one image, and its running mean, for the BatchNorm figure.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> errors = normalisation(untrained_context())
    >>> errors["train"]["vs_batch_stats"] < 1e-5 < errors["eval"]["vs_batch_stats_min"]
    True
    """
    return ctx.shared("normalisation", _normalisation)


def dropout(ctx: Context) -> dict[str, Any]:
    """The CNN's own ``nn.Dropout`` in a training-mode forward: drop rate and kept-unit scale.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> measured = dropout(untrained_context())
    >>> measured["p"], measured["kept_scale_min"] == measured["kept_scale_max"] == 2.0
    (0.5, True)
    """
    return ctx.shared("dropout", _dropout)


def _normalisation(ctx: Context) -> dict[str, Any]:
    model = copy.deepcopy(ctx.cnn)
    layers = bn_layers(model)
    x = ctx.x_test[: ctx.train_batch_size]
    out: dict[str, Any] = {}
    plot: dict[str, Any] = {"batch_size": len(x), "layers": {}}
    for mode in ("train", "eval"):
        seen, remove = capture(layers)
        try:
            with (te.training(model) if mode == "train" else te.evaluating(model)), torch.no_grad():
                model(x)
        finally:
            remove()
        err_batch, err_running = [], []
        for name, bn in layers:
            rec = seen[name]
            mean, var, _ = channel_stats(rec["input"])
            if mode == "train":
                plot["layers"][name] = {"batch_mean": mean.tolist(), "running_mean": rec["running_mean"].tolist()}
            err_batch.append(float((rec["output"] - normalise(rec["input"], mean, var, bn)).abs().max()))
            ref = normalise(rec["input"], rec["running_mean"], rec["running_var"], bn)
            err_running.append(float((rec["output"] - ref).abs().max()))
        out[mode] = {"vs_batch_stats": max(err_batch), "vs_running_stats_min": min(err_running),
                     "vs_running_stats": max(err_running), "vs_batch_stats_min": min(err_batch)}
    single = copy.deepcopy(ctx.cnn)
    seen, remove = capture(bn_layers(single))
    try:
        with te.training(single), torch.no_grad():
            single(x[:1])  # noqa: TE007 - measures what BatchNorm subtracts for a training-mode batch of one
    finally:
        remove()
    for name, _ in layers:
        plot["layers"][name]["single_image_mean"] = channel_stats(seen[name]["input"])[0].tolist()
    out["plot"] = plot
    return out


def _dropout(ctx: Context) -> dict[str, Any]:
    model = copy.deepcopy(ctx.cnn)
    seen, remove = capture([("dropout", model.dropout)])
    try:
        with te.training(model), torch.no_grad():
            torch.manual_seed(ctx.seed + 7)
            model(ctx.x_test[:256])
    finally:
        remove()
    inp, outp = seen["dropout"]["input"], seen["dropout"]["output"]
    live = inp != 0  # ReLU zeros cannot be told from dropped units
    kept = live & (outp != 0)
    n, dropped = int(live.sum()), int((live & (outp == 0)).sum())
    scale = (outp[kept] / inp[kept]) if bool(kept.any()) else torch.ones(1, dtype=torch.float64)
    return {
        "p": model.dropout.p,
        "units": n,
        "dropped": dropped,
        "drop_rate": dropped / max(n, 1),
        "kept_scale_min": float(scale.min()),
        "kept_scale_max": float(scale.max()),
    }
