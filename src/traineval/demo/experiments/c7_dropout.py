"""C7: ``Dropout(0.5)`` drops about half the units — and doubles the rest; the identity in eval mode."""

from __future__ import annotations

import torch
import torch.nn as nn

import traineval as te
from traineval.demo.experiments import _shared
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import binomial_ok
from traineval.demo.outcome import DIFFERS, FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """``nn.Dropout(0.5)`` on 200,000 ones, twice in training mode and once in eval mode; the CNN's own dropout.

    Args:
        ctx: reads ``ctx.seed`` and, through the shared measurement, the CNN's dropout.

    Returns:
        *fails* unless the drop rate is binomial and eval mode is the identity; then *differs* when
        every kept unit is scaled by exactly 1/(1−p); ``plot`` has one mask.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, c.values["kept_value"], c.values["eval_identity"]
    ('differs', 2.0, True)
    """
    drop = _shared.dropout(ctx)
    p = 0.5
    layer = nn.Dropout(p)
    units = 200_000
    x = torch.ones(units)
    torch.manual_seed(ctx.seed + 19)
    with te.training(layer):
        a, b = layer(x), layer(x)
    with te.evaluating(layer):
        e = layer(x)
    dropped = int((a == 0).sum())
    kept_values = torch.unique(a[a != 0])
    both_dropped = float(((a == 0) & (b == 0)).float().mean())
    mean_out = float(a.mean())
    scale = float(kept_values.max())
    rate_ok = binomial_ok(dropped, units, p)
    inverted = bool(len(kept_values) == 1 and abs(scale - 1 / (1 - p)) < 1e-6)
    expected = 1 / (1 - drop["p"])
    model_scale_ok = abs(drop["kept_scale_max"] - expected) < 1e-4 and abs(drop["kept_scale_min"] - expected) < 1e-4
    identity = torch.equal(e, x)
    if not (rate_ok and identity):
        verdict = FAILS
    else:
        verdict = DIFFERS if inverted and model_scale_ok else HOLDS
    return Outcome(
        f"on {units} ones: {dropped / units:.2%} dropped (binomial 5σ band {'met' if rate_ok else 'MISSED'}), "
        f"every kept unit = {scale:g} = 1/(1−p), mean output {mean_out:.3f}; a new mask each call "
        f"({both_dropped:.1%} dropped twice ≈ p²); eval: identity ({'yes' if identity else 'NO'}). In the trained "
        f"CNN: {drop['drop_rate']:.1%} dropped, kept units ×{drop['kept_scale_max']:.4f}",
        verdict,
        {
            "p": p,
            "units": units,
            "drop_rate": dropped / units,
            "binomial_5sigma_ok": rate_ok,
            "kept_value": scale,
            "mean_output": mean_out,
            "dropped_in_both_calls": both_dropped,
            "eval_identity": identity,
            "cnn_drop_rate": drop["drop_rate"],
            "cnn_kept_scale": [drop["kept_scale_min"], drop["kept_scale_max"]],
        },
        {"sample": a[:400].view(20, 20).tolist()},
    )
