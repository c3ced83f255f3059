"""Seeing what runs inside a forward: the stack of modules being called, and functional
mode-sensitive calls (``F.dropout`` & co.) with the module whose ``forward`` made them.

Shared by the eval contract (:mod:`traineval.contract.check`) and the runtime guard
(:mod:`traineval.runtime.guard`); private to the package.

Two independent pieces:

* :func:`track_modules` installs *global* forward pre/post hooks (reference-counted, so
  nested users share one pair) keeping a per-thread stack of the modules currently in
  ``forward``, and lets listeners see every module call — including modules that are not
  registered children of anything (``nn.Dropout(0.5)(x)`` built inside ``forward``).
* :class:`FunctionalWatch` is a ``torch.overrides.TorchFunctionMode`` that reports calls to
  functional dropout, ``scaled_dot_product_attention`` with ``dropout_p > 0`` and
  ``batch_norm(training=True)`` that *would be active*, naming the calling module. Calls
  made by torch's own modules (``nn.Dropout`` calls ``F.dropout(x, p, self.training)``)
  are not reported: those follow the mode by construction.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch.nn as nn
from torch.overrides import TorchFunctionMode

from traineval import ops
from traineval.core.sensitivity import has_torch_forward

# --------------------------------------------------------------------------- module stack
_local = threading.local()
_lock = threading.Lock()
_installed: list[Any] = []  # the two global hook handles while anyone tracks
_users = 0
_listeners: list[Callable[[nn.Module, tuple[Any, ...], Any], None]] = []
_pre_listeners: list[Callable[[nn.Module, tuple[Any, ...]], None]] = []


def module_stack() -> list[nn.Module]:
    """The modules whose ``forward`` is running in this thread, outermost first.

    >>> import torch, torch.nn as nn
    >>> seen = []
    >>> inner = nn.Linear(2, 2)
    >>> _ = inner.register_forward_pre_hook(lambda m, i: seen.append(len(module_stack())))
    >>> with track_modules():
    ...     _ = nn.Sequential(inner)(torch.ones(1, 2))
    >>> seen                                # Sequential and Linear were running
    [2]
    """
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current_module() -> nn.Module | None:
    """The innermost module whose ``forward`` is running in this thread, if any.

    >>> current_module() is None            # outside any forward
    True
    """
    stack = module_stack()
    return stack[-1] if stack else None


def _pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
    module_stack().append(module)
    for listener in list(_pre_listeners):
        listener(module, args)


def _post_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    stack = module_stack()
    # pop up to and including `module` (robust to a forward that raised in a child)
    while stack:
        if stack.pop() is module:
            break
    for listener in list(_listeners):
        listener(module, args, output)


@contextlib.contextmanager
def track_modules(
    listener: Callable[[nn.Module, tuple[Any, ...], Any], None] | None = None,
    *,
    pre_listener: Callable[[nn.Module, tuple[Any, ...]], None] | None = None,
) -> Iterator[None]:
    """Keep the module stack up to date while inside; call ``listener(module, args, output)``
    after every module's forward (any module, registered anywhere or not), and
    ``pre_listener(module, args)`` before it (``module`` is then already on the stack).

    >>> import torch, torch.nn as nn
    >>> calls = []
    >>> with track_modules(lambda module, args, output: calls.append(type(module).__name__)):
    ...     _ = nn.Dropout(0.5)(torch.ones(2))   # built on the spot: not registered anywhere
    >>> calls
    ['Dropout']
    """
    global _users
    with _lock:
        if _users == 0:
            from torch.nn.modules import module as module_mod

            _installed.append(module_mod.register_module_forward_pre_hook(_pre_hook))
            _installed.append(module_mod.register_module_forward_hook(_post_hook, always_call=True))
        _users += 1
        if listener is not None:
            _listeners.append(listener)
        if pre_listener is not None:
            _pre_listeners.append(pre_listener)
    try:
        yield
    finally:
        with _lock:
            if listener is not None:
                _listeners.remove(listener)
            if pre_listener is not None:
                _pre_listeners.remove(pre_listener)
            _users -= 1
            if _users == 0:
                for handle in _installed:
                    handle.remove()
                _installed.clear()
                module_stack().clear()


# ---------------------------------------------------------------------- functional calls
@dataclass(frozen=True)
class FunctionalCall:
    """A functional mode-sensitive call that is active (would drop units / use batch stats).

    ``caller`` is the innermost module whose forward made the call (``None`` outside any
    module); ``what`` names the function and ``detail`` the arguments that made it active.
    """

    what: str
    detail: str
    caller: nn.Module | None
    stack: tuple[nn.Module, ...]
    #: True when the call is active in either mode by construction: ``F.batch_norm`` without
    #: running statistics, like ``nn.BatchNorm*(track_running_stats=False)`` (used by the guard).
    mode_independent: bool = False


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], spec: ops.Arg) -> Any:
    if spec.name in kwargs:
        return kwargs[spec.name]
    if spec.position is not None and len(args) > spec.position:
        return args[spec.position]
    return spec.default


_SUFFIX = {"batchnorm": " (batch statistics)", "activation": " (random slopes)"}


def _active(op: ops.FunctionalOp, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why the call is active (its rate and flag, as written), or ``None`` when it is not."""
    parts = []
    if op.rate is not None:
        rate = _arg(args, kwargs, op.rate)
        if rate is None or float(rate) <= 0:
            return None
        parts.append(f"{op.rate.name}={float(rate):g}")
    if op.flag is not None:
        flag = _arg(args, kwargs, op.flag)
        if not bool(flag):
            return None
        parts.append(f"{op.flag.name}={flag!r}")
    return ", ".join(parts) + _SUFFIX.get(op.kind, "")


def _no_running_stats(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return _arg(args, kwargs, _RUNNING_MEAN) is None and _arg(args, kwargs, _RUNNING_VAR) is None


_RUNNING_MEAN, _RUNNING_VAR = ops.Arg("running_mean", 1, None), ops.Arg("running_var", 2, None)


def _function(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _short(name: str) -> str:
    return name.replace("torch.nn.functional.", "F.")


#: torch function -> its row in :mod:`traineval.ops`
WATCHED: dict[Any, ops.FunctionalOp] = {_function(op.name): op for op in ops.FUNCTIONAL}


class FunctionalWatch(TorchFunctionMode):
    """Report active functional mode-sensitive calls to ``callback`` while entered.

    Use together with :func:`track_modules` so the calling module is known. Costs one dict
    lookup per torch call inside the block.

    >>> import torch, torch.nn.functional as F
    >>> found = []
    >>> with FunctionalWatch(found.append):
    ...     _ = F.dropout(torch.ones(4), 0.5)               # training=True by default
    ...     _ = F.dropout(torch.ones(4), 0.5, training=False)
    >>> [(c.what, c.detail) for c in found]
    [('F.dropout', 'p=0.5, training=True')]
    """

    def __init__(self, callback: Callable[[FunctionalCall], None]) -> None:
        super().__init__()
        self.callback = callback

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        op = WATCHED.get(func)
        if op is not None:
            stack = module_stack()
            caller = stack[-1] if stack else None
            if caller is None or not has_torch_forward(caller):
                try:
                    detail = _active(op, args, kwargs)
                except (TypeError, ValueError):
                    detail = None
                if detail is not None:
                    independent = op.kind == "batchnorm" and _no_running_stats(args, kwargs)
                    self.callback(FunctionalCall(_short(op.name), detail, caller, tuple(stack), independent))
        return func(*args, **kwargs)
