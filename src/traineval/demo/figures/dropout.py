"""C7: inverted dropout — ``Dropout(0.5)`` zeroes half the units and doubles the rest; the identity in eval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traineval.demo.figures._style import EVAL_COLOUR, TRAIN_COLOUR
from traineval.demo.outcome import Claim


def draw(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """Two panels: one training-mode mask on a tensor of ones; the share of each output value in both modes.

    Reads ``claims["C7"]``; returns the figure (its second axes is the colour bar of the mask).

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw(pyplot(), measured_untrained("C7"))
    >>> fig.axes[0].get_title()
    'Dropout(0.5) in train() on 20×20 ones'
    >>> pyplot().close(fig)
    """
    c7 = claims["C7"]
    v = c7.values
    sample = c7.plot["sample"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    im = a.imshow(sample, cmap="magma", vmin=0, vmax=2, interpolation="nearest")
    a.set_title(f"Dropout({v['p']}) in train() on {len(sample)}×{len(sample[0])} ones", fontsize=10)
    a.set_xticks([])
    a.set_yticks([])
    a.grid(False)
    bar = fig.colorbar(im, ax=a, ticks=[0, 1, 2], fraction=0.046)
    bar.set_label("output value")
    labels = ["0 (dropped)", "1 (unchanged)", f"{v['kept_value']:g} (kept, ×1/(1−p))"]
    train = [v["drop_rate"] * 100, 0.0, (1 - v["drop_rate"]) * 100]
    ev = [0.0, 100.0 if v["eval_identity"] else 0.0, 0.0]
    xs = range(3)
    b.bar([x - 0.2 for x in xs], train, 0.4, color=TRAIN_COLOUR, label="train()")
    b.bar([x + 0.2 for x in xs], ev, 0.4, color=EVAL_COLOUR, label="eval()")
    b.set_xticks(list(xs), labels, fontsize=8)
    b.set_ylabel("share of output units (%)")
    b.set_title(f"Output values in train() and eval() (train() mean {v['mean_output']:.3f})", fontsize=10)
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig
