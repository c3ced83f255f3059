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
import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

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


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _dropout_like(p_default: float, train_default: bool, train_name: str = "training"):
    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        p = _arg(args, kwargs, 1, "p", p_default)
        train = _arg(args, kwargs, 2, train_name, train_default)
        if bool(train) and float(p) > 0:
            return f"p={float(p):g}, {train_name}={train!r}"
        return None

    return check


def _sdpa(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    p = _arg(args, kwargs, 4, "dropout_p", 0.0)
    return f"dropout_p={float(p):g}" if float(p) > 0 else None


def _batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    train = _arg(args, kwargs, 5, "training", False)
    return "training=True (batch statistics)" if bool(train) else None


def _no_running_stats(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return _arg(args, kwargs, 1, "running_mean", None) is None and _arg(args, kwargs, 2, "running_var", None) is None


def _rrelu(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    train = _arg(args, kwargs, 3, "training", False)
    return "training=True (random slopes)" if bool(train) else None


def _mha_forward(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    bound = _MHA_SIG.bind_partial(*args, **kwargs).arguments
    p = float(bound.get("dropout_p", 0.0))
    train = bound.get("training", True)
    return f"dropout_p={p:g}, training={train!r}" if p > 0 and train else None


_MHA_SIG = inspect.signature(F.multi_head_attention_forward)

_WATCHED: dict[Any, tuple[str, Callable[[tuple[Any, ...], dict[str, Any]], str | None]]] = {
    F.dropout: ("F.dropout", _dropout_like(0.5, True)),
    F.dropout1d: ("F.dropout1d", _dropout_like(0.5, True)),
    F.dropout2d: ("F.dropout2d", _dropout_like(0.5, True)),
    F.dropout3d: ("F.dropout3d", _dropout_like(0.5, True)),
    F.alpha_dropout: ("F.alpha_dropout", _dropout_like(0.5, False)),
    F.feature_alpha_dropout: ("F.feature_alpha_dropout", _dropout_like(0.5, False)),
    torch.dropout: ("torch.dropout", _dropout_like(0.5, True, "train")),
    torch.alpha_dropout: ("torch.alpha_dropout", _dropout_like(0.5, True, "train")),
    torch.feature_dropout: ("torch.feature_dropout", _dropout_like(0.5, True, "train")),
    torch.feature_alpha_dropout: ("torch.feature_alpha_dropout", _dropout_like(0.5, True, "train")),
    F.scaled_dot_product_attention: ("F.scaled_dot_product_attention", _sdpa),
    F.batch_norm: ("F.batch_norm", _batch_norm),
    F.rrelu: ("F.rrelu", _rrelu),
    F.multi_head_attention_forward: ("F.multi_head_attention_forward", _mha_forward),
}


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

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        spec = _WATCHED.get(func)
        if spec is not None:
            stack = module_stack()
            caller = stack[-1] if stack else None
            if caller is None or not has_torch_forward(caller):
                try:
                    detail = spec[1](args, kwargs)
                except (TypeError, ValueError):
                    detail = None
                if detail is not None:
                    independent = func is F.batch_norm and _no_running_stats(args, kwargs)
                    self.callback(FunctionalCall(spec[0], detail, caller, tuple(stack), independent))
        return func(*args, **kwargs)
