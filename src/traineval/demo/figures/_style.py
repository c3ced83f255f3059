"""What every figure shares: the colours of the modes, the matplotlib style, the choice of a log axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

INSTALL_HINT = ("matplotlib is not installed; figures need it: pip install matplotlib "
                "(or, in a clone of traineval: pip install '.[demo]')")

TRAIN_COLOUR = "#d62728"  # red: training mode (the bug when testing)
SMALL_BATCH_COLOUR = "#ff7f0e"  # orange: training mode on an ordinary batch
EVAL_COLOUR = "#1f77b4"  # blue: eval mode
TRUTH_COLOUR = "#2ca02c"  # green: whole-data truth
GREY = "#7f7f7f"


def require_matplotlib() -> Any:
    """Import matplotlib with the Agg backend, or raise ``ImportError`` with the install command.

    >>> require_matplotlib().get_backend().lower()
    'agg'
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    matplotlib.use("Agg", force=True)
    return matplotlib


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend (:func:`require_matplotlib` first).

    >>> pyplot().get_backend().lower()
    'agg'
    """
    require_matplotlib()
    import matplotlib.pyplot as plt

    return plt


def style(plt: Any) -> None:
    """Apply the demo's look to ``plt``'s rcParams (call inside ``plt.rc_context()``)."""
    plt.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 120,
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.frameon": False,
        "svg.hashsalt": "traineval",
    })


def image(t: Any) -> Any:
    """A ``3×H×W`` tensor in [0, 1] as an ``H×W×3`` array for ``imshow``."""
    return t.detach().clamp(0, 1).permute(1, 2, 0).numpy()


def spans_decades(values: Sequence[float], decades: float = 2.0) -> bool:
    """Whether the positive ``values`` span at least ``decades`` powers of ten (zeros are left out).

    >>> spans_decades([1.8, 0.0004]), spans_decades([0.0, 1.9, 31.9]), spans_decades([0.0])
    (True, False, False)
    """
    positive = [v for v in values if v > 0]
    return len(positive) >= 2 and math.log10(max(positive) / min(positive)) >= decades


def value_axis(ax: Any, values: Sequence[float], headroom: float = 1.3) -> bool:
    """Scale ``ax``'s y axis for bars of ``values``: logarithmic when they span decades, else linear from 0.

    On a log axis a zero bar cannot show; label it "0". Returns whether the axis is logarithmic.
    ``headroom`` is the room above the tallest bar (a factor on a linear axis, decades on a log one).
    """
    top = max(values, default=0.0)
    if spans_decades(values):
        positive = [v for v in values if v > 0]
        low = 10 ** math.floor(math.log10(min(positive)) - 0.3)
        ax.set_yscale("log")
        ax.set_ylim(low, top * 10**headroom)
        return True
    ax.set_yscale("linear")
    ax.set_ylim(0, top * headroom if top > 0 else 1)
    return False
