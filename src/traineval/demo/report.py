"""Writing the demo's results: the terminal table, ``results.json`` and a self-contained ``report.html``.

>>> import tempfile
>>> from pathlib import Path
>>> from traineval.demo.runner import DemoConfig, run
>>> results = run(DemoConfig(train_images=64, test_images=64, epochs=1, sweep_images=8,
...                          ae_images=32, ae_epochs=1, repeats=2))        # tiny: the API, not the numbers
>>> summary_line(results)                              # doctest: +ELLIPSIS
'... hold, 2 differ...'
>>> folder = Path(tempfile.mkdtemp())
>>> write_json(results, folder / "results.json"); write_html(results, {}, folder / "report.html")
>>> sorted(p.name for p in folder.iterdir())
['report.html', 'results.json']
"""

from __future__ import annotations

import base64
import html
import json
import sys
from pathlib import Path
from typing import TextIO

from traineval._console import use_color
from traineval.demo.experiments import DIFFERS, FAILS, HOLDS
from traineval.demo.runner import DemoResults

_VERDICT_STYLE = {HOLDS: "green", DIFFERS: "yellow", FAILS: "bold red"}
_VERDICT_HTML = {HOLDS: "#1a7f37", DIFFERS: "#9a6700", FAILS: "#cf222e"}


def write_json(results: DemoResults, path: Path) -> None:
    """Write ``results.json``: byte-identical for identical runs (sorted keys, no timings); see the module example."""
    path.write_text(json.dumps(results.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def print_table(results: DemoResults, stream: TextIO | None = None) -> None:
    """Print claim — measurement — verdict: a rich table when rich is installed, plain text otherwise.

    >>> import io
    >>> from traineval.demo.runner import DemoConfig, DemoResults
    >>> from traineval.demo.training import TrainingLog
    >>> from traineval.demo.experiments import Claim
    >>> claim = Claim("C9", "an example", "the article says", "exactly", "measured 1.0", "holds")
    >>> log = TrainingLog(1, 0.5, (0.9,))
    >>> stream = io.StringIO()
    >>> print_table(DemoResults(DemoConfig(), [claim], log, log), stream)
    >>> "measured 1.0" in stream.getvalue() and "holds" in stream.getvalue()
    True
    """
    stream = stream or sys.stdout
    rows = [(c.id, c.title, c.measurement, c.verdict) for c in results.claims]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _plain_table(rows, stream)
        return
    colour = use_color(stream)
    console = Console(file=stream, force_terminal=colour, no_color=not colour,
                      width=None if stream.isatty() else 140, highlight=False)
    table = Table(title="The article's claims, measured", show_lines=True, expand=False)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("claim", max_width=28)
    table.add_column("measured")
    table.add_column("verdict", no_wrap=True)
    for cid, title, measured, verdict in rows:
        table.add_row(cid, title, measured, f"[{_VERDICT_STYLE.get(verdict, '')}]{verdict}[/]")
    console.print(table)


def _plain_table(rows: list[tuple[str, str, str, str]], stream: TextIO) -> None:
    import textwrap

    print("The article's claims, measured", file=stream)
    for cid, title, measured, verdict in rows:
        print(f"\n{cid:<3} {verdict.upper():<8} {title}", file=stream)
        for line in textwrap.wrap(measured, 100):
            print(f"             {line}", file=stream)


def summary_line(results: DemoResults) -> str:
    """``8 hold, 2 differ`` style counts of the verdicts (see the module example)."""
    counts: dict[str, int] = {}
    for c in results.claims:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    words = {HOLDS: ("holds", "hold"), DIFFERS: ("differs", "differ"), FAILS: ("fails", "fail")}
    parts = []
    for verdict in (HOLDS, DIFFERS, FAILS):
        n = counts.get(verdict, 0)
        if n:
            parts.append(f"{n} {words[verdict][0] if n == 1 else words[verdict][1]}")
    return ", ".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.5}
h1{font-size:1.7em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;font-size:.92em} th,td{border:1px solid #d0d7de;padding:.4em .6em;
vertical-align:top;text-align:left} th{background:#f6f8fa}
.verdict{font-weight:600;white-space:nowrap} .muted{color:#656d76;font-size:.9em}
blockquote{margin:.5em 0;padding:.2em 1em;border-left:4px solid #d0d7de;color:#484f58}
figure{margin:1em 0} img{max-width:100%;height:auto} figcaption{color:#656d76;font-size:.9em}
code{background:#f6f8fa;padding:.1em .3em;border-radius:4px}
"""

# which figures illustrate which claim (a figure is shown once, under the first claim naming it)
_FIGURES_FOR = {
    "C2": ["c2_c3_bn_statistics.png"],
    "C4": ["c4_state_change.png"],
    "C5": ["c5_output_spread.png"],
    "C6": ["c6_batch_size.png", "c6_autoencoder.png"],
    "C7": ["c7_dropout.png"],
}


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def write_html(results: DemoResults, figures: dict[str, Path], path: Path, note: str = "") -> None:
    """Write a self-contained ``report.html``: the table, each claim in full, figures embedded as data URLs.

    See the module example; ``figures`` maps file names from :data:`~traineval.demo.figures.FIGURES`
    to PNG files, ``note`` is shown at the top (e.g. why figures are missing).
    """
    from traineval.demo.figures import FIGURES

    e = html.escape
    cfg = results.config
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>traineval demo: train/eval modes, measured</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>PyTorch's train and eval modes, measured</h1>",
        f"<p class='muted'>traineval demo · seed {cfg.seed}{' · quick run' if cfg.quick else ''} · "
        f"{cfg.train_images} training and {cfg.test_images} test images (3×16×16 coloured shapes, generated) · "
        f"CNN test accuracy {results.cnn_log.per_epoch[-1]:.1%} · {e(summary_line(results))}</p>",
    ]
    if note:
        out.append(f"<p><strong>{e(note)}</strong></p>")
    if "overview.png" in figures:
        out.append(_img(figures["overview.png"], FIGURES["overview.png"][1]))
    out.append("<table><tr><th></th><th>claim</th><th>measured</th><th>verdict</th></tr>")
    for c in results.claims:
        colour = _VERDICT_HTML.get(c.verdict, "#000")
        out.append(f"<tr><td><a href='#{c.id}'>{c.id}</a></td><td>{e(c.title)}</td><td>{e(c.measurement)}</td>"
                   f"<td class='verdict' style='color:{colour}'>{e(c.verdict)}</td></tr>")
    out.append("</table>")
    for c in results.claims:
        colour = _VERDICT_HTML.get(c.verdict, "#000")
        out.append(f"<h2 id='{c.id}'>{c.id} · {e(c.title)} · <span style='color:{colour}'>{e(c.verdict)}</span></h2>")
        out.append(f"<p><strong>The article:</strong></p><blockquote>{e(c.article)}</blockquote>")
        out.append(f"<p><strong>Exactly:</strong> {e(c.exact)}</p>")
        out.append(f"<p><strong>Measured:</strong> {e(c.measurement)}.</p>")
        for name in _FIGURES_FOR.get(c.id, []):
            if name in figures:
                out.append(_img(figures[name], FIGURES[name][1]))
    out.append("<h2>Reproduce</h2><p><code>traineval demo"
               f"{' --quick' if cfg.quick else ''} --seed {cfg.seed}</code> — numbers are in "
               "<code>results.json</code>, identical for the same seed on the same machine and library versions.</p>")
    out.append("</body></html>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")

