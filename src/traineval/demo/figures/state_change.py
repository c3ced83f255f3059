"""C4: one ``no_grad`` pass over the test data in training mode changes BatchNorm's running statistics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traineval.demo.figures._style import EVAL_COLOUR, GREY, SMALL_BATCH_COLOUR, TRAIN_COLOUR, value_axis
from traineval.demo.outcome import Claim


def draw(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """Two panels: the eval-mode accuracy after each kind of pass; how far the pass moved the running variance.

    Reads ``claims["C4"]``.

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw(pyplot(), measured_untrained("C4"))
    >>> [ax.get_title() for ax in fig.axes][1]
    "The pass in train() changes BatchNorm's state"
    >>> pyplot().close(fig)
    """
    v = claims["C4"].values
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    labels = ["before", "after a pass\nin eval()", "after a pass in\ntrain(), batch 64",
              "after a pass in\ntrain(), batch 1"]
    r64, r1 = v["train_pass_batch_64"], v["train_pass_batch_1"]
    accs = [v["accuracy_before"], v["accuracy_before"] if v["eval_pass_unchanged"] else float("nan"),
            r64["accuracy_after"], r1["accuracy_after"]]
    bars = a.bar(range(4), [x * 100 for x in accs], color=[GREY, EVAL_COLOUR, SMALL_BATCH_COLOUR, TRAIN_COLOUR])
    a.bar_label(bars, fmt="%.1f%%", fontsize=8)
    a.set_xticks(range(4), labels, fontsize=8)
    a.set_ylim(0, 110)
    a.set_ylabel("test accuracy in eval() (%)")
    a.set_title("Accuracy after one no_grad pass over the test set")
    changes = [0.0, r64["var_change_rel"] * 100, r1["var_change_rel"] * 100]
    log = value_axis(b, changes, headroom=1.12)
    bars = b.bar(range(3), changes, color=[EVAL_COLOUR, SMALL_BATCH_COLOUR, TRAIN_COLOUR])
    b.bar_label(bars, labels=[f"{c:.1f}%" if c else "0 (unchanged)" for c in changes], fontsize=8)
    b.set_xticks(range(3), labels[1:], fontsize=8)
    b.set_ylabel("running variance change (%, worst layer" + (", log scale)" if log else ")"))
    b.set_title("The pass in train() changes BatchNorm's state")
    fig.tight_layout()
    return fig
