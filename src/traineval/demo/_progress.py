"""Progress display for the demo: a rich progress bar on a terminal, plain lines otherwise (private)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, TextIO


class Progress:
    """Report named tasks with a known number of steps; silent when ``enabled`` is false.

    Writes to ``stream`` (stderr by default) so that ``--json`` output on stdout stays clean.
    Uses rich's live progress bar when rich is installed and the stream is a terminal;
    otherwise prints one line per task start and per ``note``.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self._rich: Any = None
        self._task: Any = None
        self._label = ""

    def __enter__(self) -> Progress:
        if self.enabled and _isatty(self.stream):
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress
            except ImportError:
                pass
            else:
                self._rich = RichProgress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=Console(file=self.stream),
                    transient=False,
                )
                self._rich.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None

    def start(self, label: str, total: int) -> None:
        """Begin a task of ``total`` steps."""
        self._label = label
        if not self.enabled:
            return
        if self._rich is not None:
            self._task = self._rich.add_task(label, total=total)
        else:
            print(f"  {label} ...", file=self.stream, flush=True)

    def advance(self, steps: int = 1, detail: str = "") -> None:
        """Advance the current task; ``detail`` (e.g. the loss) is shown beside its name."""
        if self._rich is not None and self._task is not None:
            desc = f"{self._label} {detail}".rstrip()
            self._rich.update(self._task, advance=steps, description=desc)

    def note(self, text: str) -> None:
        """A one-line message (an epoch summary, a finished step)."""
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.console.print(f"  {text}", highlight=False)
        else:
            print(f"    {text}", file=self.stream, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
