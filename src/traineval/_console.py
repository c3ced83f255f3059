"""Terminal output shared by every command: whether to colour, and a progress display.

Torch-free, so that ``traineval lint`` can use it.

>>> import io
>>> use_color(io.StringIO())                  # not a terminal
False
>>> plural(1, "error"), plural(2, "error")
('1 error', '2 errors')
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Any, TextIO


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (``False`` for anything that cannot say)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def use_color(stream: TextIO | None = None) -> bool:
    """Colour when writing to a terminal, unless ``NO_COLOR`` is set; always with ``FORCE_COLOR``
    (https://no-color.org, https://force-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return isatty(stream if stream is not None else sys.stdout)


def plural(n: int, word: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


class Progress:
    """Named tasks with a known (or unknown) number of steps, on ``stream`` (stderr by default).

    On a terminal: rich's live bar when rich is installed, else tqdm's, else one line per
    task. Elsewhere one line per task and per :meth:`note` when ``lines`` is true, nothing
    otherwise. Silent when ``enabled`` is false. Use it as a context manager.

    >>> import io
    >>> out = io.StringIO()
    >>> with Progress(stream=out) as progress:
    ...     progress.start("training", total=3)
    ...     progress.advance()
    ...     progress.note("epoch 1: loss 0.5")
    >>> print(out.getvalue().rstrip())
      training ...
        epoch 1: loss 0.5
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, *, lines: bool = True) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.lines = lines
        self._rich: Any = None
        self._tqdm: Any = None
        self._task: Any = None
        self._label = ""

    def __enter__(self) -> Progress:
        if self.enabled and isatty(self.stream):
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress
            except ImportError:
                pass
            else:
                self._rich = RichProgress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(file=self.stream), transient=not self.lines,
                )
                self._rich.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close_tqdm()
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)
            self._rich = None

    def _close_tqdm(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def start(self, label: str, total: int | None = None) -> None:
        """Begin a task of ``total`` steps (``None``: unknown)."""
        self._label = label
        if not self.enabled:
            return
        if self._rich is not None:
            self._task = self._rich.add_task(label, total=total)
            return
        self._close_tqdm()
        if isatty(self.stream):
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm(total=total, desc=label, leave=self.lines, file=self.stream)
                return
        if self.lines or isatty(self.stream):
            print(f"  {label} ...", file=self.stream, flush=True)

    def advance(self, steps: int = 1, detail: str = "") -> None:
        """Advance the current task; ``detail`` (e.g. the loss) is shown beside its name."""
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, advance=steps, description=f"{self._label} {detail}".rstrip())
        elif self._tqdm is not None:
            self._tqdm.update(steps)

    def note(self, text: str) -> None:
        """A one-line message (an epoch summary, a finished step)."""
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.console.print(f"  {text}", highlight=False)
        elif self.lines:
            print(f"    {text}", file=self.stream, flush=True)
