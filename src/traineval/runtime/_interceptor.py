"""How ``te.guard`` sees calls without leaving anything on the model (private).

A per-module forward hook would live in the module's hook dicts: it travels with
``copy.deepcopy`` and makes ``torch.save(model)`` depend on traineval. A *global* module hook
puts every module call in the process on PyTorch's slow hook path. Instead, each watched
module (a guarded model, its BatchNorm layers) gets an :class:`Interceptor` as its
``_compiled_call_impl``, the slot ``nn.Module.__call__`` consults first and that
``nn.Module.__getstate__`` leaves out, so pickling and deep copies never see it. Every other
module keeps PyTorch's fast path. A module already compiled in place (``module.compile()``)
keeps its compiled call: the interceptor runs the checks, then calls it.

Optimizer steps are seen through one global step pre-hook, installed while some guard needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeGuard

import torch.nn as nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

#: ``handler(module, args)`` runs before the call; it may return a function to run after it
#: (on any exit, KeyboardInterrupt included).
PreHandler = Callable[[nn.Module, tuple[Any, ...]], "Callable[[], None] | None"]
StepHandler = Callable[[Any], None]

_SLOT = "_compiled_call_impl"
_lock = threading.Lock()
_interceptors: dict[nn.Module, Interceptor] = {}
_step_handlers: tuple[StepHandler, ...] = ()
_step_handle: Any = None


class Interceptor:
    """Stands in ``module._compiled_call_impl``: runs the handlers, then the real call."""

    __slots__ = ("handlers", "module", "previous")

    def __init__(self, module: nn.Module, previous: Callable[..., Any] | None) -> None:
        self.module = module
        self.previous = previous
        self.handlers: tuple[PreHandler, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module = self.module
        call = self.previous if self.previous is not None else module._call_impl
        after: list[Callable[[], None]] = []
        try:
            for handler in self.handlers:
                done = handler(module, args)
                if done is not None:
                    after.append(done)
            return call(*args, **kwargs)
        finally:
            for done in reversed(after):
                done()


def _step(optimizer: Any, args: Any, kwargs: Any) -> None:
    for handler in _step_handlers:
        handler(optimizer)


def is_ours(value: object) -> TypeGuard[Interceptor]:
    """True when ``value`` (a module's ``_compiled_call_impl``) is a guard's interceptor."""
    return isinstance(value, Interceptor)


def add_target(module: nn.Module, handler: PreHandler) -> None:
    """Run ``handler(module, args)`` before every call of ``module``."""
    with _lock:
        found = _interceptors.get(module)
        slot: object = module.__dict__.get(_SLOT)
        if found is None or slot is not found:
            found = Interceptor(module, module.__dict__.get(_SLOT))
            _interceptors[module] = found
            module.__dict__[_SLOT] = found
        found.handlers = (*found.handlers, handler)


def remove_target(module: nn.Module, handler: PreHandler) -> None:
    """Undo :func:`add_target`; the module's own call slot comes back when no handler is left."""
    with _lock:
        icpt = _interceptors.get(module)
        if icpt is None:
            return
        icpt.handlers = tuple(h for h in icpt.handlers if h != handler)
        if icpt.handlers:
            return
        del _interceptors[module]
        slot: object = module.__dict__.get(_SLOT)
        if slot is icpt:  # not replaced since (e.g. by module.compile())
            if icpt.previous is None:
                del module.__dict__[_SLOT]
            else:
                module.__dict__[_SLOT] = icpt.previous


def is_target(module: nn.Module) -> bool:
    """True when some guard watches ``module``'s calls."""
    return module in _interceptors


def add_step_handler(handler: StepHandler) -> None:
    """Call ``handler(optimizer)`` before every ``optimizer.step()`` of any torch optimizer."""
    global _step_handlers, _step_handle
    with _lock:
        _step_handlers = (*_step_handlers, handler)
        if _step_handle is None:
            _step_handle = register_optimizer_step_pre_hook(_step)


def remove_step_handler(handler: StepHandler) -> None:
    """Undo :func:`add_step_handler` (no-op when absent)."""
    global _step_handlers, _step_handle
    with _lock:
        _step_handlers = tuple(h for h in _step_handlers if h != handler)
        if not _step_handlers and _step_handle is not None:
            _step_handle.remove()
            _step_handle = None


def installed() -> bool:
    """True while any guard hook is installed (for tests)."""
    return bool(_interceptors) or _step_handle is not None
