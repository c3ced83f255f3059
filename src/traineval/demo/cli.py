"""``traineval demo``: the article's claims reproduced, measured and pictured (``configure_demo``/``run_demo``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXIT_CLEAN, EXIT_FINDINGS = 0, 1


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"expected a number {bounds}, got {value}")
        return value

    return parse


def configure_demo(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its subcommand parser.

    >>> parser = argparse.ArgumentParser()
    >>> configure_demo(parser)
    >>> args = parser.parse_args(["--quick", "--seed", "3"])
    >>> args.quick, args.seed, args.out, args.threads
    (True, 3, 'traineval-demo', 1)
    """
    from traineval.demo.claims import ARTICLE

    parser.description = (
        f"Reproduce the claims (C1-C8) of the article {ARTICLE} and two traps beyond it (T1, T2): "
        "train a small CNN with BatchNorm and Dropout on generated images, measure each claim, draw figures "
        "and write report.html and results.json. No network; about a minute on a laptop CPU (--quick: seconds)."
    )
    parser.add_argument("--out", metavar="DIR", default="traineval-demo",
                        help="folder for report.html, results.json and the figures (default: ./traineval-demo)")
    parser.add_argument("--quick", action="store_true", help="smaller data and shorter training (seconds)")
    parser.add_argument("--seed", type=_whole_number(0, 2**31 - 1), default=0, metavar="N",
                        help="seed of the data, the training and every measurement (default: 0)")
    parser.add_argument("--threads", type=_whole_number(1), default=1, metavar="N",
                        help="CPU threads for torch (default: 1 — the models are small; results depend on N)")
    parser.add_argument("--json", action="store_true",
                        help="print results.json to stdout instead of the table (progress stays on stderr)")
    parser.add_argument("--no-progress", action="store_true", help="do not show training progress on stderr")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every measurement came out as expected, 1 when a claim ``fails``.

    >>> from traineval.cli import main
    >>> main(["demo", "--quick", "--out", "traineval-demo"])     # doctest: +SKIP
    0
    """
    from traineval._cli import UsageError
    from traineval._console import Progress
    from traineval.demo.claims import ARTICLE_TITLE
    from traineval.demo.figures._style import INSTALL_HINT, require_matplotlib
    from traineval.demo.figures.render import write_figures
    from traineval.demo.outcome import FAILS
    from traineval.demo.report import print_table, summary_line, write_html, write_json
    from traineval.demo.runner import DemoConfig, run

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder (it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None

    try:
        require_matplotlib()
        have_plots = True
    except ImportError:
        have_plots = False
    config = DemoConfig.make(quick=args.quick, seed=args.seed, threads=args.threads)
    show = not args.no_progress
    err = sys.stderr
    if show:
        print(f"traineval demo: the claims of {ARTICLE_TITLE} on PyTorch's train/eval modes, measured "
              f"({'quick run, ' if config.quick else ''}seed {config.seed}) → {out}/", file=err, flush=True)
        if not have_plots:
            print(f"  note: {INSTALL_HINT}; measuring without figures", file=err, flush=True)
    started = time.perf_counter()
    with Progress(enabled=show, stream=err) as progress:
        results = run(config, progress)

    write_json(results, out / "results.json")
    figures: dict[str, Path] = {}
    note = ""
    if have_plots:
        figures = {p.name: p for p in write_figures(results.claims, out)}
    else:
        note = f"Figures were skipped: {INSTALL_HINT}."
    write_html(results, figures, out / "report.html", note=note)

    if args.json:
        print(json.dumps(results.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print_table(results)
        print(f"\n{summary_line(results)} — in {time.perf_counter() - started:.0f} s")
        print(f"report:  {out / 'report.html'}")
        print(f"numbers: {out / 'results.json'}")
        if figures:
            print(f"figures: {', '.join(sorted(figures))} in {out}/")
        else:
            print(f"figures: skipped — {INSTALL_HINT}")
    failed = [c.id for c in results.claims if c.verdict == FAILS]
    if failed:
        print(f"traineval demo: the expected behaviour did not show for {', '.join(failed)} "
              "(a PyTorch change? please report it)", file=err)
        return EXIT_FINDINGS
    return EXIT_CLEAN
