"""Process-wide hooks behind ``te.guard`` (private).

Nothing is stored on a guarded model: a per-module hook would live in the module's hook
dicts, travel with ``copy.deepcopy`` and make ``torch.save(model)`` depend on traineval. So
the guard uses *global* hooks, reference-counted, installed while at least one guard is
active, and dispatches by module identity:

* one global forward pre-hook, looking each called module up in :data:`_targets` (a dict
  keyed by the module object: one hash lookup per module call);
* one global optimizer step pre-hook for guards that were not given their optimizer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch.nn as nn
from torch.nn.modules import module as _module_mod
from torch.optim.optimizer import register_optimizer_step_pre_hook

PreHandler = Callable[[nn.Module, tuple[Any, ...]], None]
StepHandler = Callable[[Any], None]

_lock = threading.Lock()
_targets: dict[nn.Module, tuple[PreHandler, ...]] = {}
_step_handlers: tuple[StepHandler, ...] = ()
_pre_handle: Any = None
_step_handle: Any = None


def _pre(module: nn.Module, args: tuple[Any, ...]) -> None:
    handlers = _targets.get(module)
    if handlers is not None:
        for handler in handlers:
            handler(module, args)


def _step(optimizer: Any, args: Any, kwargs: Any) -> None:
    for handler in _step_handlers:
        handler(optimizer)


def add_target(module: nn.Module, handler: PreHandler) -> None:
    """Call ``handler(module, args)`` before every forward of ``module``."""
    global _pre_handle
    with _lock:
        _targets[module] = (*_targets.get(module, ()), handler)
        if _pre_handle is None:
            _pre_handle = _module_mod.register_module_forward_pre_hook(_pre)


def remove_target(module: nn.Module, handler: PreHandler) -> None:
    """Undo :func:`add_target` (no-op when absent)."""
    global _pre_handle
    with _lock:
        left = tuple(h for h in _targets.get(module, ()) if h != handler)
        if left:
            _targets[module] = left
        else:
            _targets.pop(module, None)
        if not _targets and _pre_handle is not None:
            _pre_handle.remove()
            _pre_handle = None


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
    """True while any global guard hook is installed (for tests)."""
    return _pre_handle is not None or _step_handle is not None
