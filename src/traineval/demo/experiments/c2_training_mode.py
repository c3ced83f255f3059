"""C2: in training mode BatchNorm normalises with the batch's statistics and Dropout drops units."""

from __future__ import annotations

from traineval.demo.experiments import _shared
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import binomial_ok, bn_layers
from traineval.demo.outcome import FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """Compare each BatchNorm's training-mode output with a float64 normalisation by hand; count dropped units.

    Args:
        ctx: reads ``ctx.cnn`` and the first test batch, through the shared measurements.

    Returns:
        *holds* when BatchNorm matches batch-statistics normalisation (and not running-statistics
        normalisation) and the drop count is inside a binomial 5σ band; ``plot`` has the per-channel
        means of the BatchNorm figure.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, c.values["bn_max_error_vs_batch_stats"] < 1e-5
    ('holds', True)
    """
    t = _shared.normalisation(ctx)["train"]
    drop = _shared.dropout(ctx)
    bn_ok = t["vs_batch_stats"] < 1e-4 and t["vs_running_stats_min"] > 1e-2
    drop_ok = drop["dropped"] > 0 and binomial_ok(drop["dropped"], drop["units"], drop["p"])
    return Outcome(
        f"all {len(bn_layers(ctx.cnn))} BatchNorm outputs match batch-statistics normalisation to "
        f"{t['vs_batch_stats']:.1e} (running statistics would be off by ≥ {t['vs_running_stats_min']:.2f}); "
        f"Dropout(p={drop['p']}) zeroed {drop['drop_rate']:.1%} of {drop['units']} live units",
        HOLDS if bn_ok and drop_ok else FAILS,
        {"bn_max_error_vs_batch_stats": t["vs_batch_stats"],
         "bn_min_error_vs_running_stats": t["vs_running_stats_min"],
         "dropout_rate": drop["drop_rate"], "dropout_units": drop["units"], "dropout_p": drop["p"]},
        _shared.normalisation(ctx)["plot"],
    )
