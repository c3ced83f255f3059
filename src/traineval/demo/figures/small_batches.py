"""C6: forgetting ``model.eval()`` with small test batches — accuracy against batch size, and an
autoencoder's colours at batch size 1; the overview figure of the README combines the two."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traineval.demo.figures._style import EVAL_COLOUR, GREY, TRAIN_COLOUR, image
from traineval.demo.outcome import Claim


def _accuracy_panel(ax: Any, c6: Claim) -> None:
    v = c6.values
    sizes = v["batch_sizes"]
    ax.plot(sizes, [a * 100 for a in v["accuracy_eval_mode"]], "o-", color=EVAL_COLOUR, lw=2,
            label="model.eval()")
    ax.plot(sizes, [a * 100 for a in v["accuracy_train_mode"]], "s--", color=TRAIN_COLOUR, lw=2,
            label="left in model.train()")
    chance = 100 / v["classes"]
    ax.axhline(chance, color=GREY, lw=1, ls=":")
    ax.text(sizes[-1], chance - 2, f"chance ({v['classes']} classes)", color=GREY, ha="right", va="top", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_ylim(0, 105)
    ax.set_xlabel("test batch size")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy vs test batch size: eval() vs train()")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.14))


def _autoencoder_grid(fig: Any, spec: Any, c6: Claim, columns: int = 8, with_big_batch: bool = True) -> None:
    rows = [("input", "ae_input"), ("eval()", "ae_eval"), ("train(),\nbatch of 1", "ae_train1")]
    if with_big_batch:
        rows.append(("train(),\nbatch of 64", "ae_train64"))
    grid = spec.subgridspec(len(rows), columns, wspace=0.05, hspace=0.08)
    top_row = []
    for r, (label, key) in enumerate(rows):
        images = c6.plot[key]
        for col in range(min(columns, len(images))):
            ax = fig.add_subplot(grid[r, col])
            ax.imshow(image(images[col]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for side in ("top", "right", "bottom", "left"):
                ax.spines[side].set_visible(False)
            if col == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
            if r == 0:
                top_row.append(ax)
    left, right = top_row[0].get_position(), top_row[-1].get_position()
    fig.text((left.x0 + right.x1) / 2, left.y1 + 0.02, "An autoencoder with BatchNorm: colours in eval() and train()",
             ha="center", va="bottom", fontsize=11, fontweight="bold")


def draw_batch_size(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """Test accuracy against test batch size, in eval mode and left in training mode.

    Reads ``claims["C6"]``.

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw_batch_size(pyplot(), measured_untrained("C6"))
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_xscale()
    ('test batch size', 'log')
    >>> pyplot().close(fig)
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    _accuracy_panel(ax, claims["C6"])
    fig.tight_layout()
    return fig


def draw_autoencoder(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """Autoencoder inputs and outputs: eval mode, training mode at batch size 1 and at 64.

    Reads ``claims["C6"]``; returns the figure: four rows of eight images.

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw_autoencoder(pyplot(), measured_untrained("C6"))
    >>> len(fig.axes), [" ".join(ax.get_ylabel().split()) for ax in fig.axes[::8]]
    (32, ['input', 'eval()', 'train(), batch of 1', 'train(), batch of 64'])
    >>> pyplot().close(fig)
    """
    c6 = claims["C6"]
    fig = plt.figure(figsize=(7.2, 4.4))
    spec = fig.add_gridspec(1, 1, left=0.14, right=0.99, top=0.9, bottom=0.08)
    _autoencoder_grid(fig, spec[0], c6)
    shift = c6.values["autoencoder_colour_shift_255"]
    fig.text(0.5, 0.01, f"mean colour shift vs input (0–255): eval() {shift['eval']:.1f} · train(), batch 1 "
             f"{shift['train_batch_1']:.1f} · train(), batch 64 {shift['train_batch_64']:.1f}",
             ha="center", fontsize=8, color=GREY)
    return fig


def draw_overview(plt: Any, claims: Mapping[str, Claim]) -> Any:
    """The README's figure: the accuracy panel beside the autoencoder at batch size 1.

    Reads ``claims["C6"]``; returns the figure: the accuracy panel, then three rows of seven images.

    >>> from traineval.demo.claims import measured_untrained
    >>> from traineval.demo.figures._style import pyplot
    >>> fig = draw_overview(pyplot(), measured_untrained("C6"))
    >>> len(fig.axes)
    22
    >>> pyplot().close(fig)
    """
    fig = plt.figure(figsize=(12, 4.4))
    spec = fig.add_gridspec(1, 2, width_ratios=[1, 1.35], left=0.06, right=0.99, top=0.9, bottom=0.13, wspace=0.2)
    _accuracy_panel(fig.add_subplot(spec[0]), claims["C6"])
    _autoencoder_grid(fig, spec[1], claims["C6"], columns=7, with_big_batch=False)
    fig.suptitle("Forgetting model.eval(): BatchNorm normalises each test batch by itself", fontsize=12, y=0.995)
    return fig
