"""The registry of the demo: every claim — its words, its experiment — and every figure, in one place.

The runner runs :data:`CLAIMS` in order, :mod:`~traineval.demo.report` writes them, and
:mod:`~traineval.demo.figures.render` draws :data:`FIGURES`; nothing else lists claims. C1–C8 are
the claims of the article :data:`ARTICLE` (in English on the docs page ``article.md``); T1 and T2
are two traps it does not mention.

>>> [spec.id for spec in CLAIMS]
['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8', 'T1', 'T2']
>>> [f.file for f in figures_under("C6")]
['c6_batch_size.png', 'c6_autoencoder.png']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from traineval.demo.experiments import (
    c1_two_modes,
    c2_training_mode,
    c3_eval_mode,
    c4_state_change,
    c5_output_spread,
    c6_small_batches,
    c7_dropout,
    c8_rule_of_thumb,
    t1_functional_dropout,
    t2_no_grad,
)
from traineval.demo.experiments._context import Context, untrained_context
from traineval.demo.figures import bn_statistics, dropout, output_spread, small_batches, state_change
from traineval.demo.outcome import Claim, Outcome
from traineval.errors import TraineValValueError

__all__ = ["ARTICLE", "ARTICLE_ENGLISH", "ARTICLE_TITLE", "CLAIMS", "FIGURES", "ClaimSpec", "FigureSpec",
           "figures_under", "measured_untrained", "spec"]

ARTICLE_TITLE = "《詳解model.train()和model.eval()兩種模式的原理與用法》"
ARTICLE_ENGLISH = "model.train() and model.eval(): how the two modes work and how to use them"
ARTICLE = f'{ARTICLE_TITLE} ("{ARTICLE_ENGLISH}")'
"""The article the demo reproduces, as cited wherever the demo says "the article"."""


@dataclass(frozen=True)
class ClaimSpec:
    """One claim: its id and title, what the article says, the exact behaviour, the experiment measuring it.

    ``in_article`` is false for a trap beyond the article (T1, T2); ``article`` then holds the
    statement the trap tests.
    """

    id: str
    title: str
    article: str
    exact: str
    experiment: Callable[[Context], Outcome]
    in_article: bool = True

    def run(self, ctx: Context) -> Claim:
        """Run the experiment on ``ctx`` and return the claim with its measurement and verdict.

        Args:
            ctx: the trained models and data; they are left as they were.

        Returns:
            The claim: this entry's words with the experiment's measurement, verdict and numbers.

        >>> from traineval.demo.experiments._context import untrained_context
        >>> claim = spec("C7").run(untrained_context())
        >>> claim.verdict, claim.values["kept_value"], claim.article.startswith("nn.Dropout(0.5)")
        ('differs', 2.0, True)
        """
        outcome = self.experiment(ctx)
        return Claim(self.id, self.title, self.article, self.exact, outcome.measurement, outcome.verdict,
                     outcome.values, outcome.plot, self.in_article)


@dataclass(frozen=True)
class FigureSpec:
    """One PNG: its file name, a caption (also the alt text), the claims whose measurements it draws,
    where the report shows it (under the claim ``shown_under``, or at the top when None) and how to draw it.

    ``draw(plt, claims)`` takes ``matplotlib.pyplot`` and the measured claims by id (at least those
    in ``reads``), and returns the figure; :mod:`~traineval.demo.figures.render` saves and closes it.
    """

    file: str
    caption: str
    reads: tuple[str, ...]
    shown_under: str | None
    draw: Callable[[Any, Mapping[str, Claim]], Any]


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "C1", "two modes, switched by train() / eval()",
        "A model has two modes, switched with model.train() and model.eval(); train() before training, "
        "eval() before testing.",
        "Each module carries one boolean, module.training; model.train(mode) sets it recursively and "
        "model.eval() is model.train(False). Only mode-sensitive layers read it.",
        c1_two_modes.measure,
    ),
    ClaimSpec(
        "C2", "training mode: batch statistics, dropped units",
        "In training mode BatchNorm normalises with the mean and variance of the current batch, and Dropout "
        "randomly drops a part of the connections.",
        "BatchNorm normalises with the batch mean and the biased batch variance (and updates its running "
        "statistics with the unbiased one); Dropout zeroes each unit independently with probability p.",
        c2_training_mode.measure,
    ),
    ClaimSpec(
        "C3", "eval mode: running statistics (an EMA, not whole-data)",
        "In evaluation mode BatchNorm uses statistics of the whole training data (kept fixed while testing), and "
        "Dropout uses every connection.",
        "Eval mode uses running_mean/running_var, unchanged while testing. They are not the statistics of the "
        "whole training data: each training step does running ← (1−m)·running + m·batch with momentum m "
        "(0.1 by default; the unbiased batch variance), an exponential moving average (EMA) that the last "
        "batches dominate, computed while the weights were still moving (momentum=None: a cumulative average). "
        "True population statistics need a separate pass: te.recalibrate_batchnorm.",
        c3_eval_mode.measure,
    ),
    ClaimSpec(
        "C4", "test data in training mode changes the model",
        "Without model.eval(), merely feeding test data changes the model's state (BatchNorm's running "
        "statistics), even though nothing is trained.",
        "Every training-mode forward updates running_mean, running_var and num_batches_tracked, whatever "
        "torch.no_grad() says; the weights stay put. The damage grows as the test batches shrink.",
        c4_state_change.measure,
    ),
    ClaimSpec(
        "C5", "training-mode outputs are not fixed",
        "Without model.eval(), outputs are not fixed: the same input can give a different result on every call.",
        "In training mode Dropout draws a new mask on every call and BatchNorm's output depends on the rest of "
        "the batch; in eval mode the output is a deterministic function of the input.",
        c5_output_spread.measure,
    ),
    ClaimSpec(
        "C6", "small batches in training mode distort outputs",
        "Without model.eval(), a small test batch (batch size 1 in the extreme) makes BatchNorm distort the "
        "output badly; e.g. generated images come out with wrong colours.",
        "In training mode each BatchNorm channel is normalised by the statistics of the batch itself; with one "
        "image those are that image's own per-channel mean and variance, so its overall colour, brightness and "
        "contrast are normalised away. Eval mode does not depend on the batch at all.",
        c6_small_batches.measure,
    ),
    ClaimSpec(
        "C7", "Dropout(0.5) drops half — and scales the rest by 2",
        "nn.Dropout(0.5) drops each unit with probability 0.5 on every training iteration; it is used against "
        "over-fitting.",
        "PyTorch uses inverted dropout: in training mode each unit is zeroed with probability p and every kept "
        "unit is multiplied by 1/(1−p), so the expected activation is unchanged and eval mode is the identity "
        "(no rescaling at test time). It does not simply halve what flows on.",
        c7_dropout.measure,
    ),
    ClaimSpec(
        "C8", "rule of thumb: train() to train, eval() to test",
        "Any model with BatchNorm or Dropout needs model.train() while training and model.eval() while testing.",
        "Right, and wider: every layer that reads self.training — all BatchNorm/InstanceNorm variants with "
        "running statistics, every Dropout variant, RReLU, the dropout inside attention, Transformer and RNN "
        "layers, custom modules — makes the modes matter. te.mode_sensitive(model) lists them.",
        c8_rule_of_thumb.measure,
    ),
    ClaimSpec(
        "T1", "F.dropout stays active after eval()",
        "The functional forms do not follow the module's mode by themselves.",
        "torch.nn.functional.dropout has training=True by default, so F.dropout(x, 0.5) inside forward keeps "
        "dropping after model.eval(). Write F.dropout(x, p, self.training) or use an nn.Dropout module.",
        t1_functional_dropout.measure,
        in_article=False,
    ),
    ClaimSpec(
        "T2", "torch.no_grad() does not switch modes",
        "Gradient tracking and the mode are separate switches.",
        "torch.no_grad() and torch.inference_mode() switch off gradient tracking only; they do not call eval(). "
        "Inference needs both: model.eval() plus torch.inference_mode(), or te.inference(model).",
        t2_no_grad.measure,
        in_article=False,
    ),
)

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("overview.png", "Forgetting model.eval(): test accuracy against test batch size in both modes, "
               "and an autoencoder's colours at batch size 1", ("C6",), None, small_batches.draw_overview),
    FigureSpec("c2_c3_bn_statistics.png", "What BatchNorm normalises with in each mode, and how far its running "
               "statistics are from the whole training data's, before and after te.recalibrate_batchnorm",
               ("C2", "C3"), "C2", bn_statistics.draw),
    FigureSpec("c4_state_change.png", "One pass over the test data in training mode changes BatchNorm's running "
               "statistics, and the eval accuracy afterwards", ("C4",), "C4", state_change.draw),
    FigureSpec("c5_output_spread.png", "The same input, called again and again: the output spreads in training "
               "mode and is fixed in eval mode", ("C5",), "C5", output_spread.draw),
    FigureSpec("c6_batch_size.png", "Test accuracy against test batch size, in eval mode and left in training "
               "mode", ("C6",), "C6", small_batches.draw_batch_size),
    FigureSpec("c6_autoencoder.png", "An autoencoder's colours in eval mode and in training mode at batch sizes "
               "1 and 64", ("C6",), "C6", small_batches.draw_autoencoder),
    FigureSpec("c7_dropout.png", "Inverted dropout: Dropout(0.5) zeroes half the units and doubles the rest in "
               "training mode, and is the identity in eval mode", ("C7",), "C7", dropout.draw),
)


def spec(claim_id: str) -> ClaimSpec:
    """The registry entry of ``claim_id``.

    Args:
        claim_id: ``"C1"`` … ``"C8"``, ``"T1"`` or ``"T2"``.

    Returns:
        Its :class:`ClaimSpec`; an unknown id raises ``ValueError`` naming the known ones.

    >>> spec("C7").title
    'Dropout(0.5) drops half — and scales the rest by 2'
    """
    for entry in CLAIMS:
        if entry.id == claim_id:
            return entry
    known = ", ".join(entry.id for entry in CLAIMS)
    raise TraineValValueError(f"no demo claim {claim_id!r}; the claims are {known}")


def figures_under(claim_id: str | None) -> list[FigureSpec]:
    """The figures the report shows under ``claim_id`` (``None``: at the top), in registry order.

    Args:
        claim_id: a claim's id, or ``None`` for the figures shown above the table.

    Returns:
        The :class:`FigureSpec` entries, possibly none.

    >>> [f.file for f in figures_under("C2")], [f.file for f in figures_under(None)]
    (['c2_c3_bn_statistics.png'], ['overview.png'])
    """
    return [f for f in FIGURES if f.shown_under == claim_id]


def measured_untrained(*claim_ids: str) -> dict[str, Claim]:
    """The named claims (all when none is named) measured on a small untrained context, by id.

    For examples and tests: milliseconds, and the numbers of an untrained model.

    Args:
        claim_ids: ids from :data:`CLAIMS`.

    Returns:
        The measured claims, by id.

    >>> claims = measured_untrained("C1", "T2")
    >>> {cid: c.verdict for cid, c in claims.items()}
    {'C1': 'holds', 'T2': 'holds'}
    """
    ctx = untrained_context()
    return {cid: spec(cid).run(ctx) for cid in (claim_ids or tuple(entry.id for entry in CLAIMS))}
