"""The guard's forward-time tracing: TE103 (functional dropout in eval) and TE104
(an unregistered mode-sensitive module).

Both bugs live in the model's code, so they show on the first forward in a given mode:
with ``tracing="auto"`` a forward is traced after every change of modes and every
:data:`TRACE_EVERY`-th forward; ``tracing="always"`` traces every forward.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch.nn as nn

from traineval.core import pins
from traineval.core import tracing as _tracing
from traineval.core.sensitivity import classify
from traineval.runtime import _interceptor, _scans
from traineval.runtime._host import Host

#: With ``tracing="auto"``, every this many forwards are traced even without a change of modes.
TRACE_EVERY = 64

_SUGGEST = {
    "F.scaled_dot_product_attention": "pass `dropout_p=self.p if self.training else 0.0`",
    "F.multi_head_attention_forward": "pass `training=self.training`",
    "F.batch_norm": "pass `training=self.training` (or use an `nn.BatchNorm*` submodule)",
}


class ForwardTracer:
    """Module tracing and functional interception for one guard's traced forwards."""

    def __init__(self, guard: Host) -> None:
        self.guard = guard
        self.traced_modes: int | None = None  # modules in eval at the last traced forward

    def should_trace(self, n_eval: int) -> bool:
        """Whether this forward (with ``n_eval`` modules in eval) is traced."""
        g = self.guard
        if g.options.trace_always or n_eval != self.traced_modes or g.forwards % TRACE_EVERY == 0:
            self.traced_modes = n_eval
            return True
        return False

    def enter(self, root: nn.Module) -> Callable[[], None]:
        """Start tracing this call of ``root``; the interceptor runs the returned closer when
        the call ends, however it ends."""
        g = self.guard
        state = g.tls
        stack = contextlib.ExitStack()
        stack.enter_context(_tracing.track_modules(self._on_module_done))
        state.registered = frozenset(map(id, _scans.flat(root)))
        state.stack = stack
        state.depth = 1
        if "TE103" in g.options.rules:
            state.watch = _tracing.FunctionalWatch(self._on_functional).__enter__()
        return self.close

    def close(self) -> None:
        state = self.guard.tls
        stack, watch = state.stack, state.watch
        state.stack, state.watch, state.depth = None, None, 0
        try:
            if watch is not None:
                _leave_mode(watch)
        finally:
            if stack is not None:
                stack.close()

    def _on_module_done(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        g = self.guard
        state = g.tls
        if not state.depth:
            return
        if id(module) in state.registered or _interceptor.is_target(module):
            return
        stack = _tracing.module_stack()
        caller = stack[-1] if stack else None
        if caller is None or id(caller) not in state.registered:
            return  # called by an unregistered module (e.g. a separate teacher model): its business
        if g.wants("TE105") and _scans.uses_batch_statistics(module):
            g.check_batch(module, args, caller)
        if not g.wants("TE104") or module.training == caller.training:
            return
        found = classify(module)
        if found is None or found.kind == "unknown" or pins.pinned_flag(module) is not None:
            return
        where = g.name_of(caller)
        if where is None:
            return
        g.report(
            "TE104", where, module=g.display(where), type=type(caller).__name__,
            mode=_mode(caller.training), child=_short_repr(module), child_mode=_mode(module.training),
        )

    def _on_functional(self, call: _tracing.FunctionalCall) -> None:
        g = self.guard
        state = g.tls
        caller = call.caller
        if not state.depth or caller is None or caller.training or call.mode_independent:
            return
        if id(caller) not in state.registered or not g.wants("TE103"):
            return
        where = g.name_of(caller)
        if where is None:
            return
        suggestion = _SUGGEST.get(
            call.what, f"pass `training=self.training` to {call.what}, or use an nn.Dropout submodule"
        )
        g.report(
            "TE103", where, module=g.display(where), type=type(caller).__name__, call=call.what,
            detail=call.detail, suggestion=suggestion,
        )


def _leave_mode(mode: object) -> None:
    """Pop ``mode`` off the torch-function mode stack even if modes were left above it."""
    from torch.overrides import _get_current_function_mode_stack, _pop_mode, _push_mode

    if mode not in _get_current_function_mode_stack():
        return
    above = []
    while (top := _pop_mode()) is not mode:
        above.append(top)
    for other in reversed(above):
        _push_mode(other)


def _mode(flag: bool) -> str:
    return "training" if flag else "eval"


def _short_repr(module: nn.Module) -> str:
    extra = module.extra_repr()
    text = f"{type(module).__name__}({extra})"
    return text if len(text) <= 60 else type(module).__name__
