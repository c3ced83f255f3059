"""The demo's figures (matplotlib, Agg backend): one PNG per claim family and an overview for the README.

matplotlib is an optional dependency (``pip install 'traineval[demo]'``); :func:`require_matplotlib`
says how to install it when it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from traineval.demo.experiments import Claim

INSTALL_HINT = "matplotlib is not installed; figures need it: pip install 'traineval[demo]' (or pip install matplotlib)"

TRAIN_COLOUR = "#d62728"  # red: training mode (the bug when testing)
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


def _style(plt: Any) -> None:
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


def _image(t: Any) -> Any:
    return t.detach().clamp(0, 1).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------ panels
def _batch_size_panel(ax: Any, c6: Claim) -> None:
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
    ax.set_title("C6: accuracy vs test batch size")
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
            ax.imshow(_image(images[col]), interpolation="nearest")
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
    fig.text((left.x0 + right.x1) / 2, left.y1 + 0.02, "C6: an autoencoder with BatchNorm — colours at batch size 1",
             ha="center", va="bottom", fontsize=11, fontweight="bold")


# ----------------------------------------------------------------------------- figures
def _fig_batch_size(plt: Any, claims: dict[str, Claim]) -> Any:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    _batch_size_panel(ax, claims["C6"])
    fig.tight_layout()
    return fig


def _fig_autoencoder(plt: Any, claims: dict[str, Claim]) -> Any:
    c6 = claims["C6"]
    fig = plt.figure(figsize=(7.2, 4.4))
    spec = fig.add_gridspec(1, 1, left=0.14, right=0.99, top=0.9, bottom=0.08)
    _autoencoder_grid(fig, spec[0], c6)
    shift = c6.values["autoencoder_colour_shift_255"]
    fig.text(0.5, 0.01, f"mean colour shift vs input (0–255): eval {shift['eval']:.1f} · train, batch 1 "
             f"{shift['train_batch_1']:.1f} · train, batch 64 {shift['train_batch_64']:.1f}",
             ha="center", fontsize=8, color=GREY)
    return fig


def _fig_bn_statistics(plt: Any, claims: dict[str, Claim]) -> Any:
    c2, c3 = claims["C2"], claims["C3"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.35, 1]})
    layer = list(c2.plot["layers"])[-1]  # the deepest BatchNorm: one image's statistics are far from the rest
    stats = c2.plot["layers"][layer]
    pop_mean = c3.plot["population"][layer][0]
    ch = list(range(min(24, len(pop_mean))))
    a.plot(ch, stats["single_image_mean"][: len(ch)], "^", color=TRAIN_COLOUR, alpha=0.8, label="train(), batch of 1")
    a.plot(ch, stats["batch_mean"][: len(ch)], "s", color="#ff7f0e", label=f"train(), batch of {c2.plot['batch_size']}")
    a.plot(ch, stats["running_mean"][: len(ch)], "o", color=EVAL_COLOUR, ms=8, mfc="none", mew=2,
           label="eval(): running mean (EMA)")
    a.plot(ch, pop_mean[: len(ch)], "x", color=TRUTH_COLOUR, ms=8, mew=2, label="all training data")
    a.set_xlabel(f"channel of BatchNorm '{layer}'" + (f" (first {len(ch)})" if len(ch) < len(pop_mean) else ""))
    a.set_ylabel("mean that BatchNorm subtracts")
    a.set_title("C2/C3: what BatchNorm normalises with")
    a.legend(fontsize=8, loc="best")

    gap_before = c3.values["gap_before"]
    gap_after = c3.values["gap_after_recalibration"]
    names = list(gap_before)
    x = list(range(len(names)))
    width = 0.38
    before = [gap_before[n]["var_gap_rel"] * 100 for n in names]
    after = [gap_after[n]["var_gap_rel"] * 100 for n in names]
    bars = b.bar([i - width / 2 for i in x], before, width, color=EVAL_COLOUR,
                 label="running stats (EMA) after training")
    b.bar_label(bars, fmt="%.2g%%", fontsize=7)
    bars = b.bar([i + width / 2 for i in x], after, width, color=TRUTH_COLOUR, label="after te.recalibrate_batchnorm")
    b.bar_label(bars, labels=[f"{a:.0e}%" if a else "0" for a in after], fontsize=7)
    b.set_ylim(0, max(before) * 1.35)
    b.set_xticks(x, names, rotation=20, fontsize=8)
    b.set_ylabel("mean |running var / true var − 1| (%)")
    b.set_title("C3: EMA vs whole-data statistics")
    b.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _fig_state_change(plt: Any, claims: dict[str, Claim]) -> Any:
    v = claims["C4"].values
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    labels = ["before", "after eval()\npass", "after train()\npass, batch 64", "after train()\npass, batch 1"]
    r64, r1 = v["train_pass_batch_64"], v["train_pass_batch_1"]
    accs = [v["accuracy_before"], v["accuracy_before"] if v["eval_pass_unchanged"] else float("nan"),
            r64["accuracy_after"], r1["accuracy_after"]]
    bars = a.bar(range(4), [x * 100 for x in accs], color=[GREY, EVAL_COLOUR, "#ff7f0e", TRAIN_COLOUR])
    a.bar_label(bars, fmt="%.1f%%", fontsize=8)
    a.set_xticks(range(4), labels, fontsize=8)
    a.set_ylim(0, 110)
    a.set_ylabel("eval accuracy afterwards (%)")
    a.set_title("C4: one no_grad pass over the test set")
    changes = [0.0, r64["var_change_rel"] * 100, r1["var_change_rel"] * 100]
    bars = b.bar(range(3), changes, color=[EVAL_COLOUR, "#ff7f0e", TRAIN_COLOUR])
    b.bar_label(bars, fmt="%.1f%%", fontsize=8)
    b.set_xticks(range(3), labels[1:], fontsize=8)
    b.set_ylabel("running variance change (%, worst layer)")
    b.set_title("… changes BatchNorm's state in train()")
    fig.tight_layout()
    return fig


def _fig_output_spread(plt: Any, claims: dict[str, Claim]) -> Any:
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
    ax.set_title(f"C5: the same input, {c5.values['calls']} calls")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def _fig_dropout(plt: Any, claims: dict[str, Claim]) -> Any:
    c7 = claims["C7"]
    v = c7.values
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    im = a.imshow(c7.plot["sample"], cmap="magma", vmin=0, vmax=2, interpolation="nearest")
    a.set_title(f"C7: Dropout({v['p']}) on a tensor of ones")
    a.set_xticks([])
    a.set_yticks([])
    a.grid(False)
    fig.colorbar(im, ax=a, ticks=[0, 1, 2], fraction=0.046)
    labels = ["0 (dropped)", "1 (unchanged)", f"{v['kept_value']:g} (kept, ×1/(1−p))"]
    train = [v["drop_rate"] * 100, 0.0, (1 - v["drop_rate"]) * 100]
    ev = [0.0, 100.0 if v["eval_identity"] else 0.0, 0.0]
    xs = range(3)
    b.bar([x - 0.2 for x in xs], train, 0.4, color=TRAIN_COLOUR, label="train()")
    b.bar([x + 0.2 for x in xs], ev, 0.4, color=EVAL_COLOUR, label="eval()")
    b.set_xticks(list(xs), labels, fontsize=8)
    b.set_ylabel("share of output units (%)")
    b.set_title(f"output values (mean {v['mean_output']:.3f}: expectation kept)")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _fig_overview(plt: Any, claims: dict[str, Claim]) -> Any:
    fig = plt.figure(figsize=(12, 4.4))
    spec = fig.add_gridspec(1, 2, width_ratios=[1, 1.35], left=0.06, right=0.99, top=0.9, bottom=0.13, wspace=0.2)
    _batch_size_panel(fig.add_subplot(spec[0]), claims["C6"])
    _autoencoder_grid(fig, spec[1], claims["C6"], columns=7, with_big_batch=False)
    fig.suptitle("Forgetting model.eval(): BatchNorm normalises each test batch by itself", fontsize=12, y=0.995)
    return fig


FIGURES: dict[str, tuple[Callable[[Any, dict[str, Claim]], Any], str]] = {
    "overview.png": (_fig_overview, "Forgetting model.eval(): accuracy vs batch size and colour distortion"),
    "c2_c3_bn_statistics.png": (_fig_bn_statistics, "What BatchNorm normalises with, and the EMA gap"),
    "c4_state_change.png": (_fig_state_change, "Test data in training mode changes the running statistics"),
    "c5_output_spread.png": (_fig_output_spread, "Output spread over repeated calls"),
    "c6_batch_size.png": (_fig_batch_size, "Accuracy vs test batch size"),
    "c6_autoencoder.png": (_fig_autoencoder, "Autoencoder colours at batch size 1"),
    "c7_dropout.png": (_fig_dropout, "Inverted dropout"),
}


def write_figures(claims: list[Claim], out_dir: Path) -> list[Path]:
    """Draw every figure into ``out_dir`` as PNG; returns the paths written.

    Raises ``ImportError`` with the install command when matplotlib is missing.
    """
    require_matplotlib()
    import matplotlib.pyplot as plt

    by_id = {c.id: c for c in claims}
    paths = []
    with plt.rc_context():
        _style(plt)
        for name, (draw, _) in FIGURES.items():
            fig = draw(plt, by_id)
            try:
                path = out_dir / name
                fig.savefig(path, metadata={"Software": None})
                paths.append(path)
            finally:
                plt.close(fig)
    return paths
