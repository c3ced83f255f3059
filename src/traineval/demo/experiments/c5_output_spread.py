"""C5: the same input gives different outputs on every call in training mode, identical ones in eval."""

from __future__ import annotations

import copy
from typing import Any

import torch

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.outcome import FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """Call the CNN ``ctx.repeats`` times on the same batch in each mode; measure how the outputs spread.

    Args:
        ctx: reads ``ctx.cnn``, the first test batch and ``ctx.repeats``.

    Returns:
        *holds* when training-mode calls differ and eval-mode calls are bit-identical; ``plot`` has the
        probability of the true class on every call.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, c.values["eval"]["identical_calls"], c.values["train"]["identical_calls"]
    ('holds', True, False)
    """
    x = ctx.x_test[: ctx.train_batch_size]
    y = ctx.y_test[: ctx.train_batch_size]
    results: dict[str, dict[str, Any]] = {}
    for mode in ("train", "eval"):
        model = copy.deepcopy(ctx.cnn)
        torch.manual_seed(ctx.seed + 13)
        with (te.training(model) if mode == "train" else te.evaluating(model)), torch.no_grad():
            outs = torch.stack([torch.softmax(model(x), 1) for _ in range(ctx.repeats)])
        preds = outs.argmax(2)
        results[mode] = {
            "identical_calls": all(torch.equal(outs[0], o) for o in outs[1:]),
            "max_prob_range": float((outs.amax(0) - outs.amin(0)).max()),
            "mean_prob_std": float(outs.std(0).mean()),
            "inputs_with_changing_prediction": int((preds != preds[0]).any(0).sum()),
            "true_class_prob": outs[:, torch.arange(len(y)), y].T.tolist(),
        }
    tr, ev = results["train"], results["eval"]
    ok = (not tr["identical_calls"]) and tr["max_prob_range"] > 0 and ev["identical_calls"]
    return Outcome(
        f"{ctx.repeats} calls on the same {len(x)} images: training mode — class probabilities spread by up to "
        f"{tr['max_prob_range']:.2f} (mean std {tr['mean_prob_std']:.3f}), {tr['inputs_with_changing_prediction']}"
        f"/{len(x)} predictions changed; eval mode — all calls bit-identical "
        f"({'yes' if ev['identical_calls'] else 'NO'})",
        HOLDS if ok else FAILS,
        {m: {k: v for k, v in r.items() if k != "true_class_prob"} for m, r in results.items()}
        | {"calls": ctx.repeats, "images": len(x)},
        {"train": tr["true_class_prob"], "eval": ev["true_class_prob"]},
    )
