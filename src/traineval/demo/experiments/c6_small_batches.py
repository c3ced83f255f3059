"""C6: small batches in training mode distort the output: accuracy vs batch size, autoencoder colours."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.experiments._measure import accuracy_at, chunks
from traineval.demo.outcome import FAILS, HOLDS, Outcome


def colour_shift(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean absolute difference of per-image, per-channel mean colour, in 8-bit levels (0–255).

    >>> round(colour_shift(torch.full((1, 3, 2, 2), 0.6), torch.full((1, 3, 2, 2), 0.4)), 3)   # 0.2 of 255
    51.0
    """
    return float((out.mean((2, 3)) - ref.mean((2, 3))).abs().mean() * 255)


def measure(ctx: Context) -> Outcome:
    """Test accuracy at batch sizes 1, 2, 4, … in both modes; the autoencoder's colours at batch size 1.

    Args:
        ctx: reads ``ctx.cnn``, ``ctx.autoencoder``, ``ctx.sweep_images`` test images and ``ctx.ae_test``.

    Returns:
        *holds* when training-mode accuracy at batch size 1 is 20 points below eval mode's and the
        autoencoder's colours shift at least twice as much; ``plot`` has the autoencoder's images.

    The verdict needs a trained model (an untrained one is at chance in both modes):

    >>> from traineval.demo.experiments._context import untrained_context
    >>> measure(untrained_context()).values["batch_sizes"]
    [1, 2, 4, 8, 16]
    """
    n = ctx.sweep_images
    x, y = ctx.x_test[:n], ctx.y_test[:n]
    sizes = [2**k for k in range(int(math.log2(min(256, n))) + 1)]
    train_model = copy.deepcopy(ctx.cnn)  # training-mode passes change its running statistics (C4)
    torch.manual_seed(ctx.seed + 17)
    acc_train = {bs: accuracy_at(train_model, x, y, bs, train=True) for bs in sizes}
    acc_eval = {bs: accuracy_at(ctx.cnn, x, y, bs, train=False) for bs in sizes}

    ae = copy.deepcopy(ctx.autoencoder)
    imgs = ctx.ae_test
    with te.evaluating(ae), torch.no_grad():
        out_eval = torch.cat([ae(xb) for xb in chunks(imgs, 64)])
    with te.training(ae), torch.no_grad():
        out_train1 = torch.cat([ae(xb) for xb in chunks(imgs, 1)])  # noqa: TE007 - the mistake C6 measures
        out_train_big = torch.cat([ae(xb) for xb in chunks(imgs, 64)])  # noqa: TE007 - C6, at batch size 64
    shift = {
        "eval": colour_shift(out_eval, imgs),
        "train_batch_1": colour_shift(out_train1, imgs),
        "train_batch_64": colour_shift(out_train_big, imgs),
    }
    mse = {
        "eval": float(F.mse_loss(out_eval, imgs)),
        "train_batch_1": float(F.mse_loss(out_train1, imgs)),
        "train_batch_64": float(F.mse_loss(out_train_big, imgs)),
    }
    a_eval = min(acc_eval.values())
    ok = acc_train[1] < a_eval - 0.2 and shift["train_batch_1"] > 2 * shift["eval"]
    big = sizes[-1]
    return Outcome(
        f"accuracy at batch size 1: training mode {acc_train[1]:.1%} vs eval {acc_eval[1]:.1%} "
        f"(batch {big}: {acc_train[big]:.1%} vs {acc_eval[big]:.1%}); eval accuracy the same at every batch size "
        f"({min(acc_eval.values()):.1%}–{max(acc_eval.values()):.1%}). Autoencoder colour shift: "
        f"{shift['train_batch_1']:.0f}/255 at batch 1 in training mode vs {shift['eval']:.1f}/255 in eval",
        HOLDS if ok else FAILS,
        {
            "batch_sizes": sizes,
            "accuracy_train_mode": [acc_train[b] for b in sizes],
            "accuracy_eval_mode": [acc_eval[b] for b in sizes],
            "images": n,
            "classes": int(ctx.cnn.fc.out_features),
            "autoencoder_colour_shift_255": shift,
            "autoencoder_mse": mse,
        },
        {"ae_input": imgs[:8], "ae_eval": out_eval[:8], "ae_train1": out_train1[:8], "ae_train64": out_train_big[:8]},
    )
