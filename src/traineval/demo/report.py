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
import textwrap
from pathlib import Path
from typing import TextIO

from traineval._console import use_color
from traineval.demo.claims import ARTICLE, ARTICLE_ENGLISH, ARTICLE_TITLE, FigureSpec, figures_under
from traineval.demo.outcome import DIFFERS, FAILS, HOLDS, VERDICTS, Verdict
from traineval.demo.runner import DemoResults

TABLE_TITLE = f"The claims of {ARTICLE}, measured"
_VERDICT_STYLE: dict[Verdict, str] = {HOLDS: "green", DIFFERS: "yellow", FAILS: "bold red"}
_VERDICT_HTML: dict[Verdict, str] = {HOLDS: "#1a7f37", DIFFERS: "#9a6700", FAILS: "#cf222e"}
_VERDICT_WORDS: dict[Verdict, tuple[str, str]] = {
    HOLDS: ("holds", "hold"), DIFFERS: ("differs", "differ"), FAILS: ("fails", "fail")}


def write_json(results: DemoResults, path: Path) -> None:
    """Write ``results.json``: byte-identical for identical runs (sorted keys, no timings); see the module example."""
    path.write_text(json.dumps(results.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def print_table(results: DemoResults, stream: TextIO | None = None) -> None:
    """Print claim — measurement — verdict: a rich table when rich is installed, plain text otherwise.

    >>> import io
    >>> from traineval.demo.runner import DemoConfig, DemoResults
    >>> from traineval.demo.training import TrainingLog
    >>> from traineval.demo.outcome import Claim
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
    table = Table(title=TABLE_TITLE, caption="C1–C8: the article's claims; T1, T2: traps it does not mention",
                  show_lines=True, expand=False)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("claim", max_width=28)
    table.add_column("measured")
    table.add_column("verdict", no_wrap=True)
    for cid, title, measured, verdict in rows:
        table.add_row(cid, title, measured, f"[{_VERDICT_STYLE.get(verdict, '')}]{verdict}[/]")
    console.print(table)


def _plain_table(rows: list[tuple[str, str, str, Verdict]], stream: TextIO) -> None:
    for line in textwrap.wrap(TABLE_TITLE, 100):
        print(line, file=stream)
    print("(C1–C8: the article's claims; T1, T2: traps it does not mention)", file=stream)
    for cid, title, measured, verdict in rows:
        print(f"\n{cid:<3} {verdict.upper():<8} {title}", file=stream)
        for line in textwrap.wrap(measured, 100):
            print(f"             {line}", file=stream)


def summary_line(results: DemoResults) -> str:
    """``8 hold, 2 differ`` style counts of the verdicts (see the module example)."""
    parts = []
    for verdict in VERDICTS:
        n = sum(c.verdict == verdict for c in results.claims)
        if n:
            parts.append(f"{n} {_VERDICT_WORDS[verdict][0] if n == 1 else _VERDICT_WORDS[verdict][1]}")
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


def _figure(spec: FigureSpec, figures: dict[str, Path]) -> list[str]:
    if spec.file not in figures:
        return []
    data = base64.b64encode(figures[spec.file].read_bytes()).decode("ascii")
    caption = html.escape(spec.caption)
    return [f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"]


def write_html(results: DemoResults, figures: dict[str, Path], path: Path, note: str = "") -> None:
    """Write a self-contained ``report.html``: the table, each claim in full, figures embedded as data URLs.

    See the module example; ``figures`` maps the file names of
    :data:`traineval.demo.claims.FIGURES` to PNG files (a figure missing from it is left out),
    ``note`` is shown at the top (e.g. why figures are missing).
    """
    e = html.escape
    cfg = results.config
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>traineval demo: train/eval modes, measured</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>PyTorch's train and eval modes, measured</h1>",
        f"<p>The claims of the article <strong lang='zh-Hant'>{e(ARTICLE_TITLE)}</strong> "
        f"(“{e(ARTICLE_ENGLISH)}”), each reproduced on a model trained on the spot and measured. "
        "<strong>C1–C8</strong> are the article's claims, <strong>T1</strong> and <strong>T2</strong> two traps "
        "it does not mention. Each verdict is computed from the measurement: <em>holds</em> when the measured "
        "behaviour is the one the article describes, <em>differs</em> when it differs measurably from the "
        "statement as written, <em>fails</em> when the expected behaviour did not show at all.</p>",
        f"<p class='muted'>traineval demo · seed {cfg.seed}{' · quick run' if cfg.quick else ''} · "
        f"{cfg.train_images} training and {cfg.test_images} test images (3×16×16 coloured shapes, generated) · "
        f"CNN test accuracy {results.cnn_log.per_epoch[-1]:.1%} · {e(summary_line(results))}</p>",
    ]
    if note:
        out.append(f"<p><strong>{e(note)}</strong></p>")
    for spec in figures_under(None):
        out.extend(_figure(spec, figures))
    out.append("<table><tr><th></th><th>claim</th><th>measured</th><th>verdict</th></tr>")
    for c in results.claims:
        colour = _VERDICT_HTML.get(c.verdict, "#000")
        out.append(f"<tr><td><a href='#{c.id}'>{c.id}</a></td><td>{e(c.title)}</td><td>{e(c.measurement)}</td>"
                   f"<td class='verdict' style='color:{colour}'>{e(c.verdict)}</td></tr>")
    out.append("</table>")
    for c in results.claims:
        colour = _VERDICT_HTML.get(c.verdict, "#000")
        out.append(f"<h2 id='{c.id}'>{c.id} · {e(c.title)} · <span style='color:{colour}'>{e(c.verdict)}</span></h2>")
        said = "The article says:" if c.in_article else "Beyond the article:"
        out.append(f"<p><strong>{said}</strong></p><blockquote>{e(c.article)}</blockquote>")
        out.append(f"<p><strong>Exactly:</strong> {e(c.exact)}</p>")
        out.append(f"<p><strong>Measured:</strong> {e(c.measurement)}.</p>")
        for spec in figures_under(c.id):
            out.extend(_figure(spec, figures))
    out.append("<h2>Reproduce</h2><p><code>traineval demo"
               f"{' --quick' if cfg.quick else ''} --seed {cfg.seed}</code> — numbers are in "
               "<code>results.json</code>, identical for the same seed on the same machine and library versions.</p>")
    out.append("</body></html>")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
