"""What the guard's parts (steps, tracer, scope) need from the guard that owns them (private).

A :class:`typing.Protocol`, so that :mod:`traineval.runtime.guard` imports its parts and no
part imports the guard back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn as nn

from traineval.core import tracing as _tracing
from traineval.runtime.options import GuardOptions


class ThreadState(threading.local):
    """Per-thread tracing state of one guard."""

    scoped = 0  # open Guard.scope() blocks: the model's own forward is already covered
    depth = 0
    stack: contextlib.ExitStack | None = None
    watch: _tracing.FunctionalWatch | None = None
    registered: frozenset[int] = frozenset()


class Host(Protocol):
    model: nn.Module
    label: str
    options: GuardOptions
    optimizers: list[torch.optim.Optimizer]
    forwards: int
    compiled_seen: bool
    active: bool
    tls: ThreadState

    def wants(self, code: str) -> bool: ...
    def report(self, code: str, where: str, **values: Any) -> None: ...
    def sensitive(self, module: nn.Module) -> bool: ...
    def check_compiled(self) -> None: ...
    def name_of(self, module: nn.Module) -> str | None: ...
    def display(self, name: str) -> str: ...
    def check_batch(self, bn: nn.Module, args: tuple[Any, ...], named: nn.Module) -> None: ...
    def on_root(self, root: nn.Module, args: tuple[Any, ...]) -> Callable[[], None] | None: ...
