"""T2 (beyond the article): ``torch.no_grad()`` turns off gradients only; the model stays in training mode."""

from __future__ import annotations

import copy

import torch

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import buffers, buffers_equal
from traineval.demo.outcome import FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """Call a training-mode model twice under ``torch.no_grad()``, then under ``te.inference``.

    Args:
        ctx: reads ``ctx.cnn`` (a copy) and 64 test images.

    Returns:
        *holds* when, under ``no_grad``, the flag stays on, outputs differ and the running statistics
        change, while under ``te.inference`` the calls agree.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> measure(untrained_context()).values["training_flag_under_no_grad"]
    True
    """
    model = copy.deepcopy(ctx.cnn).train()
    x = ctx.x_test[:64]
    before = buffers(model)
    torch.manual_seed(ctx.seed + 31)
    with torch.no_grad():
        still_training = model.training and all(te.modes(model).values())
        o1, o2 = model(x), model(x)  # noqa: TE007 - T2 shows that no_grad() alone leaves training mode on
    stats_changed = not buffers_equal(before, buffers(model))
    with te.inference(model):
        i1, i2 = model(x), model(x)
        flag_inside = model.training
    ok = still_training and not torch.equal(o1, o2) and stats_changed and torch.equal(i1, i2) and not flag_inside
    return Outcome(
        f"inside torch.no_grad(): model.training = {still_training}, outputs requires_grad = {o1.requires_grad}, "
        f"two calls differed ({'yes' if not torch.equal(o1, o2) else 'no'}), running statistics changed "
        f"({'yes' if stats_changed else 'no'}); inside te.inference(model): calls identical "
        f"({'yes' if torch.equal(i1, i2) else 'NO'})",
        HOLDS if ok else FAILS,
        {"training_flag_under_no_grad": still_training, "outputs_differ": not torch.equal(o1, o2),
         "running_stats_changed": stats_changed, "te_inference_identical": torch.equal(i1, i2)},
    )
