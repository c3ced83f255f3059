"""Drawing the registry's figures (:data:`traineval.demo.claims.FIGURES`) into PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from traineval.demo.claims import FIGURES
from traineval.demo.figures._style import pyplot, style
from traineval.demo.outcome import Claim


def write_figures(claims: Sequence[Claim], out_dir: Path) -> list[Path]:
    """Draw every figure whose claims were measured into ``out_dir`` as PNG; returns the paths written.

    The files are byte-identical for identical claims (no timestamps, no software version).

    Args:
        claims: the measured claims; a figure that reads a claim not among them is skipped.
        out_dir: an existing folder.

    Returns:
        The paths written, in registry order.

    Raises:
        ImportError: matplotlib is missing; the message says how to install it.

    >>> import tempfile
    >>> write_figures([], Path(tempfile.mkdtemp()))      # no claims measured: nothing to draw
    []
    """
    plt = pyplot()
    by_id = {c.id: c for c in claims}
    paths = []
    with plt.rc_context():
        style(plt)
        for figure in FIGURES:
            if not all(cid in by_id for cid in figure.reads):
                continue
            fig = figure.draw(plt, by_id)
            try:
                path = out_dir / figure.file
                fig.savefig(path, metadata={"Software": None})
                paths.append(path)
            finally:
                plt.close(fig)
    return paths
