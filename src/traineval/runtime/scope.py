"""``Guard.scope()``: a block that the guard treats as one forward of the guarded model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from traineval.core import tracing as _tracing
from traineval.runtime._host import Host


class GuardScope:
    """One scope of :meth:`Guard.scope`: a context manager, or :meth:`open`/:meth:`close`.

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.ModuleDict({"drop": nn.Dropout(0.5)})
    >>> with te.guard(model, on="log") as g:
    ...     scope = g.scope().open()
    ...     _ = model["drop"](torch.ones(2))
    ...     scope.close()
    """

    def __init__(self, guard: Host, args: tuple[Any, ...]) -> None:
        self.guard = guard
        self.args = args
        self._closer: Callable[[], None] | None = None
        self._pushed = False
        self._open = False

    def open(self) -> GuardScope:
        """Run the model's forward-time checks now and start watching the block."""
        g = self.guard
        if self._open or not g.active:
            return self
        self._closer = g.on_root(g.model, self.args)
        if g.tls.depth:  # tracing: calls in the block are attributed to the model
            stack = _tracing.module_stack()
            if g.model not in stack:
                stack.append(g.model)
                self._pushed = True
        g.tls.scoped += 1
        self._open = True
        return self

    def close(self) -> None:
        """End the scope (idempotent)."""
        if not self._open:
            return
        self._open = False
        g = self.guard
        g.tls.scoped -= 1
        try:
            if self._pushed:
                stack = _tracing.module_stack()
                while stack and stack.pop() is not g.model:
                    pass
        finally:
            self._pushed = False
            closer, self._closer = self._closer, None
            if closer is not None:
                closer()

    def __enter__(self) -> GuardScope:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
