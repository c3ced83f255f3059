"""C8: train()/eval() matter exactly when the model has mode-sensitive layers (BatchNorm, Dropout, and kin)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.outcome import FAILS, HOLDS, Outcome


class _LayerNormMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(768, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _RReLUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(768, 64), nn.RReLU(), nn.Linear(64, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def measure(ctx: Context) -> Outcome:
    """Train- vs eval-mode outputs on the same input for the CNN, a LayerNorm MLP and an RReLU MLP.

    Args:
        ctx: reads ``ctx.cnn`` and 32 test images.

    Returns:
        *holds* when exactly the models with mode-sensitive layers (the CNN, the RReLU MLP) change
        their output with the mode; ``values`` has the difference per model.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> measure(untrained_context()).verdict
    'holds'
    """
    torch.manual_seed(ctx.seed + 23)
    models = {"DemoCNN (BatchNorm + Dropout)": copy.deepcopy(ctx.cnn), "MLP with LayerNorm + GELU": _LayerNormMLP(),
              "MLP with RReLU only": _RReLUNet()}
    x = ctx.x_test[:32]
    rows: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        with te.training(model), torch.no_grad():
            out_train = model(x)  # noqa: TE007 - C8 compares training- with eval-mode outputs on the same input
        with te.evaluating(model), torch.no_grad():
            out_eval = model(x)
        rows[name] = {
            "mode_sensitive": [s.type_name for s in te.mode_sensitive(model)],
            "max_train_eval_difference": float((out_train - out_eval).abs().max()),
        }
    cnn, ln, rr = rows.values()
    ok = bool(cnn["max_train_eval_difference"] > 0 and ln["max_train_eval_difference"] == 0
              and not ln["mode_sensitive"] and rr["max_train_eval_difference"] > 0 and rr["mode_sensitive"])
    return Outcome(
        "train vs eval outputs on the same input: " + "; ".join(
            f"{name}: {len(r['mode_sensitive'])} mode-sensitive layer(s), max |Δ| {r['max_train_eval_difference']:.3g}"
            for name, r in rows.items()
        ),
        HOLDS if ok else FAILS,
        {"models": rows},
    )
