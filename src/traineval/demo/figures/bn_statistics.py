"""C2 and C3: what BatchNorm normalises with in each mode, and how far eval mode's statistics are from the
whole training data's, before and after ``te.recalibrate_batchnorm``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traineval.demo.figures._style import EVAL_COLOUR, SMALL_BATCH_COLOUR, TRAIN_COLOUR, TRUTH_COLOUR, value_axis
from traineval.demo.outcome import Claim


def _subtracted_means(ax: Any, c2: Claim, c3: Claim) -> None:
    layer = list(c2.plot["layers"])[-1]  # the deepest BatchNorm: one image's statistics are far from the rest
    stats = c2.plot["layers"][layer]
    pop_mean = c3.plot["population"][layer][0]
    ch = list(range(min(24, len(pop_mean))))
    ax.plot(ch, stats["single_image_mean"][: len(ch)], "^", color=TRAIN_COLOUR, alpha=0.8,
            label="train(), batch of 1 image: that image's mean")
    ax.plot(ch, stats["batch_mean"][: len(ch)], "s", color=SMALL_BATCH_COLOUR,
            label=f"train(), batch of {c2.plot['batch_size']} images: the batch's mean")
    ax.plot(ch, stats["running_mean"][: len(ch)], "o", color=EVAL_COLOUR, ms=8, mfc="none", mew=2,
            label="eval(): the running mean (moving average)")
    ax.plot(ch, pop_mean[: len(ch)], "x", color=TRUTH_COLOUR, ms=8, mew=2, label="mean over all training data")
    first = f", first {len(ch)}" if len(ch) < len(pop_mean) else ""
    ax.set_xlabel(f"channel of the last BatchNorm ('{layer}'{first})")
    ax.set_ylabel("mean that BatchNorm subtracts")
    ax.set_title("What BatchNorm subtracts: train() vs eval()")
    values = [*stats["single_image_mean"][: len(ch)], *stats["batch_mean"][: len(ch)], *pop_mean[: len(ch)]]
    low, high = min(values), max(values)
    ax.set_ylim(low - 0.05 * (high - low), high + 0.45 * (high - low))  # room for the legend above the points
    ax.legend(fontsize=8, loc="upper left", ncol=2, columnspacing=1.0, handletextpad=0.3)


def _variance_gap(ax: Any, c3: Claim) -> None:
    gap_before = c3.values["gap_before"]
    gap_after = c3.values["gap_after_recalibration"]
    names = list(gap_before)
    x = list(range(len(names)))
    width = 0.38
    before = [gap_before[n]["var_gap_rel"] * 100 for n in names]
    after = [gap_after[n]["var_gap_rel"] * 100 for n in names]
    log = value_axis(ax, before + after, headroom=1.4)
    bars = ax.bar([i - width / 2 for i in x], before, width, color=EVAL_COLOUR,
                  label="running statistics after training (moving average)")
    ax.bar_label(bars, labels=[f"{v:.2g}%" for v in before], fontsize=7)
    bars = ax.bar([i + width / 2 for i in x], after, width, color=TRUTH_COLOUR,
                  label="after te.recalibrate_batchnorm")
    ax.bar_label(bars, labels=[f"{v:.0e}%" if v else "0" for v in after], fontsize=7)
    ax.set_xticks(x, [f"BatchNorm {i + 1}\n{n}" for i, n in enumerate(names)], fontsize=8)
    ax.set_ylabel("mean |running var / true var − 1|\n(%" + (", log scale)" if log else ")"))
    ax.set_title("eval() statistics vs all the training data")
    ax.legend(fontsize=8, loc="upper left")


def draw(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """Two panels: the per-channel means BatchNorm subtracts in each mode; the running variances' gap.

    Reads ``claims["C2"]`` and ``claims["C3"]``. The gaps before and after recalibration span decades:
    a log axis shows both.

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw(pyplot(), measured_untrained("C2", "C3"))
    >>> [ax.get_yscale() for ax in fig.axes]
    ['linear', 'log']
    >>> pyplot().close(fig)
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.35, 1]})
    _subtracted_means(a, claims["C2"], claims["C3"])
    _variance_gap(b, claims["C3"])
    fig.tight_layout()
    return fig
