"""The runtime guard: ``te.guard`` catches mode bugs while a real training job runs.

Static analysis cannot see a mode set by another package, a model loaded in eval mode or a
framework that flips a submodule. The guard watches the running job instead and reports the
``TE1xx`` family (``traineval rules``), each finding once per (code, module):

========  ===================================  ================================================
TE101     inference-in-training-mode           forward under ``no_grad`` with modules training
TE102     training-step-in-eval-mode           ``optimizer.step()`` / backward while in eval
TE103     functional-dropout-in-eval           ``F.dropout(x, 0.5)`` active in an eval module
TE104     unregistered-mode-sensitive-module   Dropout built in ``forward``, BN in a plain list
TE105     tiny-batchnorm-batch                 BatchNorm statistics over < 16 values
TE106     eval-inside-training                 part of a training model in eval at a step
========  ===================================  ================================================

>>> import torch, torch.nn as nn, traineval as te
>>> model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.2))
>>> with te.guard(model, on="log") as guard, torch.no_grad():
...     _ = model(torch.randn(32, 8))            # validation that forgot model.eval()
>>> [(d.code, d.where) for d in guard.diagnostics]
[('TE101', '')]

Nothing the model carries changes: no hook is registered on it; the guarded model and its
BatchNorm layers get an interceptor in the call slot that ``nn.Module.__getstate__`` leaves
out (see :mod:`traineval.runtime._interceptor`), so ``copy.deepcopy``, ``state_dict`` and pickling
see the model as it is, and outputs and gradients are bit-identical with and without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import threading
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from traineval import _torch
from traineval.catalog import get_rule, make
from traineval.catalog.te1xx import FAMILIES, RULES
from traineval.core import pins
from traineval.core import tracing as _tracing
from traineval.core.sensitivity import classify
from traineval.diagnostics import Diagnostic, doc_command
from traineval.errors import (
    TraineValError,
    TraineValTypeError,
    TraineValValueError,
    TraineValWarning,
    describe_value,
    require_module,
)
from traineval.runtime import _interceptor, _scans
from traineval.runtime.allow import is_allowed

#: With ``tracing="auto"``, every this many forwards are traced even without a change of modes.
TRACE_EVERY = 64

OnFinding = Literal["warn", "raise", "log"] | Callable[[Diagnostic], object]
logger = logging.getLogger("traineval.guard")

_CODES = tuple(r.code for r in RULES)
_STEP_CODES = frozenset({"TE102", "TE106"})
_TRACE_CODES = frozenset(FAMILIES["tracing"])
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_SUGGEST = {
    "F.scaled_dot_product_attention": "pass `dropout_p=self.p if self.training else 0.0`",
    "F.multi_head_attention_forward": "pass `training=self.training`",
    "F.batch_norm": "pass `training=self.training` (or use an `nn.BatchNorm*` submodule)",
}


class GuardError(TraineValError, RuntimeError):
    """A guard finding raised with ``on="raise"``; the finding is in ``.diagnostic``.

    >>> import traineval as te
    >>> from traineval.catalog import make
    >>> err = te.GuardError(make("TE105", "bn", module="bn", type="BatchNorm1d", count=2,
    ...                          shape="(2, 8)", minimum=16, extra=""))
    >>> err.diagnostic.code
    'TE105'
    """

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(_text(diagnostic))
        self.diagnostic = diagnostic


@dataclass(frozen=True)
class GuardSummary:
    """How often each code fired, per module path (``""`` is the guarded model itself).

    >>> s = GuardSummary({"TE102": {"": 3}}, label="Net")
    >>> s.total, str(s).splitlines()[1].split()
    (3, ['TE102', 'training-step-in-eval-mode', 'Net', '3'])
    """

    counts: dict[str, dict[str, int]]
    label: str = "model"
    notices: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Number of occurrences over every code and module."""
        return sum(sum(per.values()) for per in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"counts": {code: {where: n}}, "total": n, "notices": [...]}``."""
        return {"counts": self.counts, "total": self.total, "notices": list(self.notices)}

    def __str__(self) -> str:
        if not self.counts:
            lines = [f"te.guard({self.label}): no findings"]
        else:
            lines = [f"te.guard({self.label}): {self.total} occurrence(s)"]
            for code in sorted(self.counts):
                name = get_rule(code).name
                for where, n in sorted(self.counts[code].items()):
                    lines.append(f"  {code}  {name}  {where or self.label}  {n}")
        return "\n".join(lines + [f"  note: {n}" for n in self.notices])


class _ThreadState(threading.local):
    scoped = 0  # open Guard.scope() blocks: the model's own forward is already covered
    depth = 0
    stack: contextlib.ExitStack | None = None
    watch: _tracing.FunctionalWatch | None = None
    registered: frozenset[int] = frozenset()


class Guard:
    """A running guard over one model; create it with :func:`guard` (``te.guard(model, ...)``).

    Use it as a context manager, or keep the handle and call :meth:`remove`. Findings are
    delivered as they happen (``on``) and kept in :attr:`diagnostics`; :meth:`summary`
    counts every occurrence per code and module.

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    >>> g = te.guard(model, on="log")
    >>> _ = model(torch.randn(2, 4))                 # 2 values per channel
    >>> g.remove(); g.summary().counts
    {'TE105': {'1': 1}}
    """

    def __init__(self, model: nn.Module, optimizer: Any, options: dict[str, Any]) -> None:
        """Validate :func:`guard`'s arguments (``options`` holds its keyword arguments) and install."""
        on, rules, allow, once = options["on"], options["rules"], options["allow"], options["once"]
        name, tracing, min_batchnorm_values = options["name"], options["tracing"], options["min_batchnorm_values"]
        require_module(model)
        self.model = _torch.unwrap(model)
        self.label = name if name is not None else type(self.model).__name__
        if not isinstance(self.label, str):
            raise TraineValTypeError(f"expected a str for name, got {describe_value(name)}")
        self._on = _check_on(on)
        enabled = _codes(rules, "rules", everything=rules is None)
        self._allowed = frozenset(_codes(allow, "allow", everything=False))
        self._rules = frozenset(enabled) - self._allowed
        if not isinstance(once, bool):
            raise TraineValTypeError(f"expected True or False for once, got {describe_value(once)}")
        self.once = once
        if isinstance(min_batchnorm_values, bool) or not isinstance(min_batchnorm_values, int):
            raise TraineValTypeError(
                f"expected an int for min_batchnorm_values, got {describe_value(min_batchnorm_values)}"
            )
        if min_batchnorm_values < 2:
            raise TraineValValueError(
                f"min_batchnorm_values must be at least 2 (BatchNorm needs 2 values per channel), "
                f"got {min_batchnorm_values}"
            )
        self.min_batchnorm_values = min_batchnorm_values
        if tracing not in ("auto", "always"):
            raise TraineValValueError(f"tracing must be 'auto' or 'always', got {tracing!r}")
        self._trace_always = tracing == "always"
        self._trace = bool(self._rules & _TRACE_CODES)
        self._optimizers = _check_optimizers(optimizer, self.model)

        self._diagnostics: list[Diagnostic] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._notices: list[str] = []
        self._sens: dict[nn.Module, bool] = {}
        self._names: dict[int, str] | None = None
        self._bn_targets: list[nn.Module] = []
        self._opt_owner: weakref.WeakKeyDictionary[Any, tuple[int, bool]] = weakref.WeakKeyDictionary()
        self._opt_handles: list[Any] = []
        self._armed: list[Any] = []
        self._fired = False
        self._step_seen = False
        self._traced_modes: int | None = None  # modules in eval at the last traced forward
        self._forwards = 0
        self._forwards_at_step: int | None = None  # forwards seen at the previous optimizer step
        self._compiled_seen = _is_compiled(model) or _is_compiled(self.model)
        self._tls = _ThreadState()
        self.active = False
        self._install()

    # ------------------------------------------------------------------ life cycle
    def _install(self) -> None:
        """Add this guard's hooks (also used to resume after :meth:`_uninstall`, keeping caches)."""
        _interceptor.add_target(self.model, self._on_root)
        try:
            for bn in self._bn_targets:
                _interceptor.add_target(bn, self._on_bn)
            if self._rules & _STEP_CODES:
                if self._optimizers:
                    for opt in self._optimizers:
                        self._opt_handles.append(opt.register_step_pre_hook(self._on_given_step))
                else:
                    _interceptor.add_step_handler(self._on_any_step)
        except BaseException:
            self._uninstall()
            raise
        self.active = True
        if self._compiled_seen:
            self._notice_compiled()

    def _uninstall(self) -> None:
        """Remove every hook; what was learnt about the model stays (the benchmark suspends this way)."""
        self.active = False
        _interceptor.remove_target(self.model, self._on_root)
        for bn in self._bn_targets:
            _interceptor.remove_target(bn, self._on_bn)
        _interceptor.remove_step_handler(self._on_any_step)
        for handle in self._opt_handles:
            handle.remove()
        self._opt_handles.clear()
        self._disarm()
        self._close_trace()

    def remove(self) -> None:
        """Remove every hook of this guard; the model is left exactly as it is. Idempotent.

        >>> import torch.nn as nn, traineval as te
        >>> g = te.guard(nn.Linear(2, 2)); g.remove(); g.active
        False
        """
        if self._compiled_seen:
            self._notice_compiled()
        self._uninstall()
        self._bn_targets.clear()
        self._sens.clear()
        self._names = None

    def __enter__(self) -> Guard:
        if not self.active:
            raise TraineValValueError("this guard was removed; create a new one with te.guard(model)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"<Guard {self.label} {state}: {len(self._diagnostics)} finding(s)>"

    # ------------------------------------------------------------------ scopes
    def scope(self, *args: Any) -> GuardScope:
        """Treat a block as one forward of the guarded model (``args``: its inputs, if any).

        The forward-time checks (TE101, TE103, TE104) run when the guarded model's own
        ``forward`` is called. Loops and frameworks whose steps call submodules instead
        (``model.encoder(x)`` then ``model.head(h)``, a Lightning ``training_step`` calling
        ``self.net(x)``) can wrap the step in ``guard.scope()``. A call of the model's own
        ``forward`` inside the block is not checked a second time. Usable as a context
        manager, or with :meth:`GuardScope.open`/:meth:`GuardScope.close` from callbacks.

        >>> import torch, torch.nn as nn, traineval as te
        >>> model = nn.ModuleDict({"body": nn.Linear(4, 4), "drop": nn.Dropout(0.5)})
        >>> found = []
        >>> with te.guard(model, on=found.append) as g, torch.no_grad():
        ...     with g.scope():                       # the step never calls model(...)
        ...         y = model["drop"](model["body"](torch.ones(2, 4)))
        >>> [(d.code, d.where) for d in found]         # inference in training mode
        [('TE101', '')]
        """
        return GuardScope(self, args)

    # ------------------------------------------------------------------ results
    @property
    def diagnostics(self) -> list[Diagnostic]:
        """The findings delivered so far, in order (each (code, module) once unless ``once=False``)."""
        return list(self._diagnostics)

    def summary(self) -> GuardSummary:
        """Counts of every occurrence per code and module, repeats included.

        >>> import torch.nn as nn, traineval as te
        >>> with te.guard(nn.Linear(2, 2)) as g:
        ...     pass
        >>> print(g.summary())
        te.guard(Linear): no findings
        """
        if self._compiled_seen:
            self._notice_compiled()
        counts: dict[str, dict[str, int]] = {}
        for (code, where), n in sorted(self._counts.items()):
            counts.setdefault(code, {})[where] = n
        return GuardSummary(counts, self.label, tuple(self._notices))

    # ------------------------------------------------------------------ reporting
    def _wants(self, code: str) -> bool:
        return code in self._rules and not is_allowed(code)

    def _report(self, code: str, where: str, **values: Any) -> None:
        key = (code, where)
        self._counts[key] += 1
        if self.once and self._counts[key] > 1:
            return
        diag = make(code, where, **values)
        rank = _world_rank()
        if rank is not None:
            diag = dataclasses.replace(diag, message=f"{diag.message} [rank {rank}]", data={**diag.data, "rank": rank})
        self._diagnostics.append(diag)
        self._deliver(diag)

    def _deliver(self, diag: Diagnostic) -> None:
        on = self._on
        if on == "warn":
            warnings.warn(_text(diag), TraineValWarning, stacklevel=_user_stacklevel())
        elif on == "raise":
            raise GuardError(diag)
        elif on == "log":
            logger.log(logging.ERROR if diag.severity.rank == 2 else logging.WARNING, "%s", _text(diag))
        else:
            on(diag)  # type: ignore[operator]

    def _notice_compiled(self) -> None:
        if self._notices:
            return
        text = (
            f"te.guard({self.label}): the model runs under torch.compile (or its forward is called "
            "directly, not through `model(...)`); forward-time rules (TE101, TE103, TE104, TE105) "
            "are not checked inside compiled code, step-time rules (TE102, TE106) still are. Guard "
            "an uncompiled run for full coverage."
        )
        self._notices.append(text)
        if self._on == "log":
            logger.warning("%s", text)
        else:
            warnings.warn(text, TraineValWarning, stacklevel=_user_stacklevel())

    def _name(self, module: nn.Module) -> str | None:
        names = self._names
        if names is None or id(module) not in names:
            names = self._names = {id(m): n for n, m in self.model.named_modules()}
        return names.get(id(module))

    def _display(self, name: str) -> str:
        return name or self.label

    def _sensitive(self, module: nn.Module) -> bool:
        found = self._sens.get(module)
        if found is None:
            found = self._learn(module)
        return found

    def _learn(self, module: nn.Module) -> bool:
        found = classify(module)
        sensitive = found is not None and found.kind != "unknown"
        self._sens[module] = sensitive
        self._names = None
        if isinstance(module, _BatchNorm) and "TE105" in self._rules:
            self._bn_targets.append(module)
            if self.active:
                _interceptor.add_target(module, self._on_bn)
        return sensitive

    # ------------------------------------------------------------------ forward
    def _on_root(self, root: nn.Module, args: tuple[Any, ...]) -> Callable[[], None] | None:
        if self._tls.scoped:
            return None  # inside Guard.scope(): this forward was checked when the scope opened
        if torch.compiler.is_compiling():
            self._compiled_seen = True
            return None
        if self._compiled_seen:
            self._notice_compiled()
        self._forwards += 1
        n_eval = 0
        any_train = False
        sens = self._sens
        for m in _scans.flat(root):
            if m.training:
                any_train = True
            else:
                n_eval += 1
            if m not in sens:
                self._learn(m)
        if not torch.is_grad_enabled():
            if any_train and self._wants("TE101"):
                self._check_inference()
        elif self._armed or (n_eval and not self._step_seen):
            self._update_backward_fallback(n_eval > 0)
        if self._trace and not self._tls.depth and not _compiled_in_place(root) and self._should_trace(n_eval):
            return self._enter_trace(root)
        return None

    def _check_inference(self) -> None:
        nodes = _scans.walk(self.model)
        members = [n for n in nodes if n.module.training and n.pin is not True and self._sensitive(n.module)]
        if not members or _scans.statistics_pass(members):
            return
        context = "torch.inference_mode()" if torch.is_inference_mode_enabled() else "torch.no_grad()"
        for where, group in _scans.group(nodes, members, True).items():
            self._report(
                "TE101", where, module=self._display(where), context=context, count=len(group),
                examples=_scans.examples(group),
            )

    def _on_bn(self, bn: nn.Module, args: tuple[Any, ...]) -> None:
        if torch.compiler.is_compiling():
            self._compiled_seen = True
        elif _scans.uses_batch_statistics(bn) and self._wants("TE105"):
            self._check_batch(bn, args, bn)

    def _check_batch(self, bn: nn.Module, args: tuple[Any, ...], named: nn.Module) -> None:
        x = args[0] if args else None
        count = _scans.batchnorm_values(bn, x)
        if count is None or count >= self.min_batchnorm_values:
            return
        where = self._name(named)
        if where is None:
            return
        extra = "; with 1 value PyTorch raises" if count == 1 else ""
        self._report(
            "TE105", where, module=self._display(where), type=type(bn).__name__, count=count,
            shape=tuple(x.shape), minimum=self.min_batchnorm_values, extra=extra,  # type: ignore[union-attr]
        )

    # ------------------------------------------------------------------ tracing (TE103, TE104)
    def _should_trace(self, n_eval: int) -> bool:
        """``tracing="auto"``: the first forward after every change of modes, then every
        :data:`TRACE_EVERY`-th forward — the bugs TE103/TE104 look for are in the model's code,
        so they show on the first forward in a given mode."""
        if self._trace_always or n_eval != self._traced_modes or self._forwards % TRACE_EVERY == 0:
            self._traced_modes = n_eval
            return True
        return False

    def _enter_trace(self, root: nn.Module) -> Callable[[], None]:
        """Start module tracing (and functional interception) for this call of ``root``; the
        interceptor runs the returned closer when the call ends, however it ends."""
        state = self._tls
        stack = contextlib.ExitStack()
        stack.enter_context(_tracing.track_modules(self._on_module_done))
        state.registered = frozenset(map(id, _scans.flat(root)))
        state.stack = stack
        state.depth = 1
        if "TE103" in self._rules:
            state.watch = _tracing.FunctionalWatch(self._on_functional).__enter__()
        return self._close_trace

    def _close_trace(self) -> None:
        state = self._tls
        stack, watch = state.stack, state.watch
        state.stack, state.watch, state.depth = None, None, 0
        try:
            if watch is not None:
                _leave_mode(watch)
        finally:
            if stack is not None:
                stack.close()

    def _on_module_done(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        state = self._tls
        if not state.depth:
            return
        if id(module) in state.registered or _interceptor.is_target(module):
            return
        stack = _tracing.module_stack()
        caller = stack[-1] if stack else None
        if caller is None or id(caller) not in state.registered:
            return  # called by an unregistered module (e.g. a separate teacher model): its business
        if self._wants("TE105") and _scans.uses_batch_statistics(module):
            self._check_batch(module, args, caller)
        if not self._wants("TE104") or module.training == caller.training:
            return
        found = classify(module)
        if found is None or found.kind == "unknown" or pins.pinned_flag(module) is not None:
            return
        where = self._name(caller)
        if where is None:
            return
        self._report(
            "TE104", where, module=self._display(where), type=type(caller).__name__,
            mode=_mode(caller.training), child=_short_repr(module), child_mode=_mode(module.training),
        )

    def _on_functional(self, call: _tracing.FunctionalCall) -> None:
        state = self._tls
        caller = call.caller
        if not state.depth or caller is None or caller.training or call.mode_independent:
            return
        if id(caller) not in state.registered or not self._wants("TE103"):
            return
        where = self._name(caller)
        if where is None:
            return
        suggestion = _SUGGEST.get(
            call.what, f"pass `training=self.training` to {call.what}, or use an nn.Dropout submodule"
        )
        self._report(
            "TE103", where, module=self._display(where), type=type(caller).__name__, call=call.what,
            detail=call.detail, suggestion=suggestion,
        )

    # ------------------------------------------------------------------ steps (TE102, TE106)
    def _on_given_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._step(optimizer)

    def _on_any_step(self, optimizer: Any) -> None:
        groups = len(optimizer.param_groups)
        known = self._opt_owner.get(optimizer)
        if known is None or known[0] != groups:
            params = {id(p) for p in self.model.parameters()}
            owns = any(id(p) in params for g in optimizer.param_groups for p in g["params"])
            known = self._opt_owner[optimizer] = (groups, owns)
        if known[1]:
            self._step(optimizer)

    def _step(self, optimizer: Any) -> None:
        # A torch.compile(model) wrapper runs the model's compiled code without its __call__:
        # steps follow each other with no forward seen in between.
        unseen = self._forwards_at_step is not None and self._forwards == self._forwards_at_step
        self._forwards_at_step = self._forwards
        if self._compiled_seen or unseen or _is_compiled(self.model):
            self._compiled_seen = True
            self._notice_compiled()
        self._step_seen = True
        self._disarm()
        self._check_step(f"`{type(optimizer).__name__}.step()`")

    def _update_backward_fallback(self, any_eval: bool) -> None:
        if not (self._rules & _STEP_CODES) or not any_eval or self._step_seen or self._optimizers:
            self._disarm()
            return
        self._fired = False
        if not self._armed:
            self._armed = [
                p.register_post_accumulate_grad_hook(self._on_accumulate)
                for p in self.model.parameters()
                if p.requires_grad
            ]

    def _disarm(self) -> None:
        handles, self._armed = self._armed, []
        for handle in handles:
            handle.remove()

    def _on_accumulate(self, param: torch.Tensor) -> None:
        if self._fired or self._step_seen:
            return
        self._fired = True
        self._check_step("a backward pass")

    def _check_step(self, trigger: str) -> None:
        if not (self._wants("TE102") or self._wants("TE106")):
            return
        root = self.model
        if all(m.training for m in _scans.flat(root)):
            return
        nodes = _scans.walk(root)
        members = [
            n
            for n in nodes
            if not n.module.training
            and n.pin is not False
            and self._sensitive(n.module)
            and not _scans.frozen(n)
        ]
        if not members:
            return
        if not root.training:
            if self._wants("TE102"):
                self._report(
                    "TE102", "", trigger=trigger, module=self.label, count=len(members),
                    examples=_scans.examples(members),
                )
            return
        if not self._wants("TE106"):
            return
        for where, group in _scans.group(nodes, members, False).items():
            top = next(n.module for n in nodes if n.name == where)
            self._report(
                "TE106", where, trigger=trigger, module=where, type=type(top).__name__, model=self.label,
                count=len(group), examples=_scans.examples(group),
            )


class GuardScope:
    """One scope of :meth:`Guard.scope`: a context manager, or :meth:`open`/:meth:`close`."""

    def __init__(self, guard: Guard, args: tuple[Any, ...]) -> None:
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
        self._closer = g._on_root(g.model, self.args)
        if g._tls.depth:  # tracing: calls in the block are attributed to the model
            stack = _tracing.module_stack()
            if g.model not in stack:
                stack.append(g.model)
                self._pushed = True
        g._tls.scoped += 1
        self._open = True
        return self

    def close(self) -> None:
        """End the scope (idempotent)."""
        if not self._open:
            return
        self._open = False
        g = self.guard
        g._tls.scoped -= 1
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


def guard(
    model: nn.Module,
    optimizer: Any = None,
    *,
    on: OnFinding = "warn",
    rules: str | Iterable[str] | None = None,
    allow: str | Iterable[str] = (),
    once: bool = True,
    min_batchnorm_values: int = 16,
    tracing: Literal["auto", "always"] = "auto",
    name: str | None = None,
) -> Guard:
    """Watch ``model`` while a job runs and report train/eval mode bugs (``TE1xx``) as they happen.

    Returns a :class:`Guard`, active at once: use it as a context manager or call
    ``.remove()``. Several models (student and teacher) can be guarded at the same time, each
    with its own guard. The guard never changes the model, its modes or its outputs.

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> found = []
    >>> with te.guard(model, opt, on=found.append):      # a callable receives each Diagnostic
    ...     _ = model.eval()                              # validation ...
    ...     loss = model(torch.randn(32, 8)).sum()        # ... and training never calls train()
    ...     loss.backward(); opt.step()
    >>> [(d.code, d.where) for d in found]
    [('TE102', '')]

    Parameters:
        model: the model (a ``DistributedDataParallel``/``DataParallel`` wrapper or a
            ``torch.compile`` result is unwrapped; module paths are relative to the inner model).
        optimizer: an optimizer (or a list of them) that trains ``model``. Without one, any
            ``torch.optim`` optimizer that holds the model's parameters triggers the step
            checks, and a backward pass stands in until the first step is seen.
        on: ``"warn"`` (a :class:`~traineval.TraineValWarning`), ``"raise"`` (:class:`GuardError`),
            ``"log"`` (logger ``traineval.guard``) or a callable receiving the ``Diagnostic``.
        rules: the codes (or families ``"modes"``, ``"batchnorm"``, ``"tracing"``) to check;
            all ``TE1xx`` codes by default. Unchecked rules cost nothing.
        allow: codes that are intended for this model and never reported (a per-model
            ``te.allow``), e.g. ``allow=["TE101"]`` for an EMA teacher run under ``no_grad``.
        once: report each (code, module) once (default); ``False`` reports every occurrence.
            :meth:`Guard.summary` counts every occurrence either way.
        min_batchnorm_values: TE105's threshold, values per channel (default 16).
        tracing: ``"auto"`` (default) runs the module tracing and functional interception
            behind TE103/TE104 in the first forward after every change of modes and in every
            64th forward (those bugs are in the model's code: they show on the first forward
            in a mode); ``"always"`` runs it in every forward, at a higher cost.
        name: a label for messages (default: the model's class name).

    Raises:
        TypeError / ValueError: for a non-module model, an unknown code, a bad ``on``, or an
            optimizer that holds none of the model's parameters.
    """
    options = {"on": on, "rules": rules, "allow": allow, "once": once, "name": name, "tracing": tracing}
    return Guard(model, optimizer, {**options, "min_batchnorm_values": min_batchnorm_values})


# ---------------------------------------------------------------------- helpers
def _text(diag: Diagnostic) -> str:
    return f"{diag.code} {diag.message} (fix: {diag.fix}; see `{doc_command(diag.code)}`)"


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


def _compiled_in_place(module: nn.Module) -> bool:
    """True when ``module.compile()`` was called before the guard (its interceptor wraps it)."""
    call = module.__dict__.get("_compiled_call_impl")
    return call is not None and (not _interceptor.is_ours(call) or call.previous is not None)


def _is_compiled(model: nn.Module) -> bool:
    call = model.__dict__.get("_compiled_call_impl")
    if _interceptor.is_ours(call):
        call = call.previous  # type: ignore[union-attr]
    return isinstance(getattr(model, "_orig_mod", None), nn.Module) or call is not None


def _check_on(on: Any) -> OnFinding:
    if isinstance(on, str):
        if on not in ("warn", "raise", "log"):
            raise TraineValValueError(f"on must be 'warn', 'raise', 'log' or a callable, got {on!r}")
        return on  # type: ignore[return-value]
    if not callable(on):
        raise TraineValTypeError(f"expected 'warn', 'raise', 'log' or a callable for on, got {describe_value(on)}")
    return on


def _codes(value: Any, what: str, *, everything: bool) -> set[str]:
    if everything:
        return {r.code for r in RULES if r.default_enabled}
    items = [value] if isinstance(value, str) else value
    expected = f"expected diagnostic codes such as 'TE101' for {what}, got"
    try:
        items = list(items)
    except TypeError:
        raise TraineValTypeError(f"{expected} {describe_value(value)}") from None
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise TraineValTypeError(f"{expected} {describe_value(item)}")
        key = item.strip()
        if key.lower() in FAMILIES:
            out.update(FAMILIES[key.lower()])
            continue
        code = get_rule(key).code
        if code not in _CODES:
            raise TraineValValueError(
                f"{code} is not a runtime code: te.guard checks {', '.join(_CODES)} "
                f"(or the families {', '.join(FAMILIES)})"
            )
        out.add(code)
    return out


def _check_optimizers(optimizer: Any, model: nn.Module) -> list[torch.optim.Optimizer]:
    if optimizer is None:
        return []
    opts = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    for opt in opts:
        if not isinstance(opt, torch.optim.Optimizer):
            raise TraineValTypeError(
                f"expected a torch.optim.Optimizer (or a list of them) for optimizer, got {describe_value(opt)}"
            )
    params = {id(p) for p in model.parameters()}
    for opt in opts:
        if not any(id(p) in params for g in opt.param_groups for p in g["params"]):
            raise TraineValValueError(
                f"the {type(opt).__name__} passed as optimizer holds none of the parameters of "
                f"{type(model).__name__} — pass the optimizer that trains this model"
            )
    return opts


def _world_rank() -> int | None:
    """This process's rank when there are several, else ``None``."""
    _, rank, world = _torch.distributed()
    return rank if world > 1 else None


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside torch and traineval."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith((_PKG_DIR, _TORCH_DIR)) or filename.startswith("<")):
            return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return 1
