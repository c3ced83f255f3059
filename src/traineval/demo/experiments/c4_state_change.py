"""C4: a forgotten ``eval()`` changes BatchNorm's running statistics even under ``no_grad``."""

from __future__ import annotations

import copy
from typing import Any

import torch

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import accuracy_at, bn_layers, buffers, buffers_equal, chunks, running, tracked
from traineval.demo.outcome import FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """One ``no_grad`` pass over the test set in eval mode, and in training mode in batches of 64 and of 1:
    what it does to the running statistics, the weights and the eval accuracy afterwards.

    Args:
        ctx: reads ``ctx.cnn`` (copies run in training mode) and the test set.

    Returns:
        *holds* when the eval-mode pass changed no buffer and the training-mode passes moved the
        running statistics but no weight; ``values`` has each pass's changes and accuracy.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, c.values["eval_pass_unchanged"], c.values["train_pass_batch_1"]["batches_counted"]
    ('holds', True, 64)
    """
    model = copy.deepcopy(ctx.cnn)
    acc_before = accuracy_at(model, ctx.x_test, ctx.y_test, 256, train=False)
    before = buffers(model)
    with torch.no_grad(), te.evaluating(model):
        for xb in chunks(ctx.x_test, 64):
            model(xb)
    eval_unchanged = buffers_equal(before, buffers(model))
    params_before = {n: p.detach().clone() for n, p in model.named_parameters()}

    runs: dict[int, dict[str, Any]] = {}
    for bs in (64, 1):
        m = copy.deepcopy(ctx.cnn)
        start = {n: tuple(t.clone() for t in running(bn)) for n, bn in bn_layers(m)}
        counted = tracked(bn_layers(m)[0][1])
        torch.manual_seed(ctx.seed + 11)
        m.train()  # the bug: the model was left in training mode
        with torch.no_grad():
            for xb in chunks(ctx.x_test, bs):
                m(xb)  # noqa: TE007 - the mistake C4 measures: test data fed in training mode changes the model
        m.eval()
        stats = {n: running(bn) for n, bn in bn_layers(m)}
        mean_shift = max(float(((s[0] - start[n][0]).abs() / start[n][1].sqrt()).mean()) for n, s in stats.items())
        var_change = max(float((s[1] / start[n][1] - 1).abs().mean()) for n, s in stats.items())
        runs[bs] = {
            "mean_shift_std": mean_shift,
            "var_change_rel": var_change,
            "batches_counted": tracked(bn_layers(m)[0][1]) - counted,
            "accuracy_after": accuracy_at(m, ctx.x_test, ctx.y_test, 256, train=False),
            "weights_unchanged": all(torch.equal(p, params_before[n]) for n, p in m.named_parameters()),
        }
    r64, r1 = runs[64], runs[1]
    changed = r64["mean_shift_std"] > 0 and r1["mean_shift_std"] > 0 and r1["batches_counted"] > 0
    ok = eval_unchanged and changed and r64["weights_unchanged"] and r1["weights_unchanged"]
    return Outcome(
        f"one no_grad pass over the test set in training mode, no weight changed: batches of 64 moved the "
        f"running means by up to {r64['mean_shift_std']:.2f} std and the variances by {r64['var_change_rel']:.0%} "
        f"(eval accuracy {acc_before:.1%} → {r64['accuracy_after']:.1%}); batches of 1: "
        f"{r1['mean_shift_std']:.2f} std, {r1['var_change_rel']:.0%} (→ {r1['accuracy_after']:.1%}). "
        f"The same pass in eval mode changed nothing",
        HOLDS if ok else FAILS,
        {
            "accuracy_before": acc_before,
            "eval_pass_unchanged": eval_unchanged,
            "train_pass_batch_64": r64,
            "train_pass_batch_1": r1,
        },
    )
