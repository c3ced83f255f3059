"""C5: the same input gives a different output on every call in training mode, the same one in eval mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traineval.demo.figures._style import EVAL_COLOUR, TRAIN_COLOUR
from traineval.demo.outcome import Claim


def draw(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """The probability of the true class on each of the repeated calls, per test image, in both modes.

    Reads ``claims["C5"]``.

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw(pyplot(), measured_untrained("C5"))
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['train(): each call', 'eval(): every call (identical)']
    >>> pyplot().close(fig)
    """
    c5 = claims["C5"]
    train, ev = c5.plot["train"], c5.plot["eval"]
    shown = min(16, len(train))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i in range(shown):
        ax.plot([i - 0.12] * len(train[i]), train[i], "o", color=TRAIN_COLOUR, alpha=0.45, ms=5,
                label="train(): each call" if i == 0 else None)
        ax.plot([i + 0.12] * len(ev[i]), ev[i], "_", color=EVAL_COLOUR, ms=14, mew=2.5,
                label="eval(): every call (identical)" if i == 0 else None)
    ax.set_xticks(range(shown), [str(i) for i in range(shown)])
    ax.set_xlabel("test image")
    ax.set_ylabel("probability of the true class")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"The same input, {c5.values['calls']} calls: train() vs eval()")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
