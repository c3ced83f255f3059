"""C3: eval mode uses running statistics, fixed while testing — but they are an EMA, not whole-data statistics."""

from __future__ import annotations

import copy

import torch

import traineval as te
from traineval.demo.experiments import _shared
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import (
    accuracy_at,
    bn_layers,
    buffers,
    buffers_equal,
    chunks,
    population_statistics,
    recalibrate,
    running,
    stats_gap,
    tracked,
)
from traineval.demo.outcome import DIFFERS, FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """Check eval mode against running-statistics normalisation; compare the running statistics with the
    whole-data statistics (float64 reference) before and after ``te.recalibrate_batchnorm``.

    Args:
        ctx: reads ``ctx.cnn``, the training images (the reference) and the test set.

    Returns:
        *fails* unless eval mode uses the running statistics and leaves them unchanged; then
        *differs* when recalibration closes most of the gap to the whole-data statistics, which shows
        that the running statistics are not those. ``values`` has the gaps per layer.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, c.values["buffers_unchanged_by_eval_passes"]
    ('differs', True)
    """
    e = _shared.normalisation(ctx)["eval"]
    uses_running = e["vs_running_stats"] < 1e-4 and e["vs_batch_stats_min"] > 1e-2
    model = copy.deepcopy(ctx.cnn)
    before = buffers(model)
    with te.evaluating(model), torch.no_grad():
        for xb in chunks(ctx.x_test, 64):
            model(xb)
    fixed = buffers_equal(before, buffers(model))

    population = population_statistics(ctx.cnn, ctx.x_train)
    gap_before = stats_gap(ctx.cnn, population)
    acc_before = accuracy_at(ctx.cnn, ctx.x_test, ctx.y_test, 256, train=False)
    batches = list(chunks(ctx.x_train, 256))
    recal = copy.deepcopy(ctx.cnn)
    recalibrate(recal, batches, order="layerwise")
    gap_after = stats_gap(recal, population)
    acc_after = accuracy_at(recal, ctx.x_test, ctx.y_test, 256, train=False)
    single = copy.deepcopy(ctx.cnn)
    recalibrate(single, batches, order="single-pass")
    gap_single = stats_gap(single, population)

    def worst(gaps: dict[str, dict[str, float]], key: str) -> float:
        return max(g[key] for g in gaps.values())

    names = list(gap_before)
    first = bn_layers(ctx.cnn)[0][1]
    momentum, steps = first.momentum, tracked(first)
    steps_per_epoch = len(ctx.x_train) // ctx.train_batch_size
    last_10_weight = 1 - (1 - momentum) ** 10 if momentum else None
    last_epoch_weight = 1 - (1 - momentum) ** steps_per_epoch if momentum else None
    mean_b, var_b = worst(gap_before, "mean_gap_std"), worst(gap_before, "var_gap_rel")
    mean_a, var_a = worst(gap_after, "mean_gap_std"), worst(gap_after, "var_gap_rel")
    weights = (
        f"With momentum {momentum} the last 10 training batches carry {last_10_weight:.0%} of the running "
        f"statistics' weight, the last epoch's {steps_per_epoch} batches {last_epoch_weight:.1%}"
        if momentum
        else "With momentum=None the running statistics are the cumulative average of every training batch"
    )
    text = (
        f"eval outputs match running-statistics normalisation to {e['vs_running_stats']:.1e}; "
        f"test passes left every buffer bit-identical ({'yes' if fixed else 'NO'}). {weights}. "
        f"Running stats vs whole-data stats: mean off by up to {mean_b:.3f} std, variance by up "
        f"to {var_b:.1%}; after te.recalibrate_batchnorm: {mean_a:.1e} std and {var_a:.1e} relative (float32 "
        f"rounding); test accuracy {acc_before:.1%} → {acc_after:.1%}"
    )
    # The EMA "differs" from whole-data statistics when recalibration closes most of the gap.
    ema_differs = (mean_b > 4 * mean_a and mean_b > 1e-4) or (var_b > 4 * var_a and var_b > 1e-4)
    if not (uses_running and fixed):
        verdict = FAILS
    else:
        verdict = DIFFERS if ema_differs else HOLDS
    return Outcome(
        text,
        verdict,
        {
            "eval_max_error_vs_running_stats": e["vs_running_stats"],
            "eval_min_error_vs_batch_stats": e["vs_batch_stats_min"],
            "buffers_unchanged_by_eval_passes": fixed,
            "momentum": momentum,
            "num_batches_tracked": steps,
            "last_10_batches_weight": last_10_weight,
            "last_epoch_weight": last_epoch_weight,
            "gap_before": gap_before,
            "gap_after_recalibration": gap_after,
            "gap_after_single_pass_recalibration": gap_single,
            "test_accuracy_before": acc_before,
            "test_accuracy_after_recalibration": acc_after,
        },
        {
            "layers": names,
            "population": {n: (population[n][0].tolist(), population[n][1].tolist()) for n in names},
            "running": {n: tuple(t.tolist() for t in running(bn)) for n, bn in bn_layers(ctx.cnn)},
            "recalibrated": {n: tuple(t.tolist() for t in running(bn)) for n, bn in bn_layers(recal)},
        },
    )
