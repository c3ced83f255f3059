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

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from traineval import _torch
from traineval.core.sensitivity import classify
from traineval.diagnostics import Diagnostic
from traineval.errors import TraineValValueError, require_module
from traineval.runtime import _interceptor, _scans
from traineval.runtime._host import ThreadState
from traineval.runtime.allow import is_allowed
from traineval.runtime.options import TRACE_CODES, GuardOptions, OnFinding, optimizers, parse
from traineval.runtime.results import Findings, GuardSummary
from traineval.runtime.scope import GuardScope
from traineval.runtime.steps import StepWatch
from traineval.runtime.tracer import ForwardTracer


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

    def __init__(
        self, model: nn.Module, optimizers: list[torch.optim.Optimizer], options: GuardOptions
    ) -> None:
        """Install a guard with validated ``options``; use :func:`guard` to create one."""
        self.model = _torch.unwrap(model)
        self.options = options
        self.label = options.label
        self.once = options.once
        self.min_batchnorm_values = options.min_batchnorm_values
        self.optimizers = optimizers
        self.findings = Findings(options.label, options.on, options.once)
        self._sens: dict[nn.Module, bool] = {}
        self._names: dict[int, str] | None = None
        self._bn_targets: list[nn.Module] = []
        self.forwards = 0
        self.compiled_seen = _is_compiled(model) or _is_compiled(self.model)
        self.tls = ThreadState()
        self.steps = StepWatch(self)
        self.tracer = ForwardTracer(self)
        self._trace = bool(options.rules & TRACE_CODES)
        self.active = False
        self._install()

    # ------------------------------------------------------------------ life cycle
    def _install(self) -> None:
        """Add this guard's hooks (also used to resume after :meth:`_uninstall`, keeping caches)."""
        _interceptor.add_target(self.model, self.on_root)
        try:
            for bn in self._bn_targets:
                _interceptor.add_target(bn, self._on_bn)
            self.steps.install()
        except BaseException:
            self._uninstall()
            raise
        self.active = True
        if self.compiled_seen:
            self.findings.notice_compiled()

    def _uninstall(self) -> None:
        """Remove every hook; what was learnt about the model stays (the benchmark suspends this way)."""
        self.active = False
        _interceptor.remove_target(self.model, self.on_root)
        for bn in self._bn_targets:
            _interceptor.remove_target(bn, self._on_bn)
        self.steps.uninstall()
        self.tracer.close()

    def remove(self) -> None:
        """Remove every hook of this guard; the model is left exactly as it is. Idempotent.

        >>> import torch.nn as nn, traineval as te
        >>> g = te.guard(nn.Linear(2, 2)); g.remove(); g.active
        False
        """
        if self.compiled_seen:
            self.findings.notice_compiled()
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
        return f"<Guard {self.label} {state}: {len(self.findings.delivered)} finding(s)>"

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
        return list(self.findings.delivered)

    def summary(self) -> GuardSummary:
        """Counts of every occurrence per code and module, repeats included.

        >>> import torch.nn as nn, traineval as te
        >>> with te.guard(nn.Linear(2, 2)) as g:
        ...     pass
        >>> print(g.summary())
        te.guard(Linear): no findings
        """
        if self.compiled_seen:
            self.findings.notice_compiled()
        return self.findings.summary()

    # ------------------------------------------------------------------ reporting
    def wants(self, code: str) -> bool:
        """Whether ``code`` is checked now (enabled, and not inside ``te.allow``)."""
        return code in self.options.rules and not is_allowed(code)

    def report(self, code: str, where: str, **values: Any) -> None:
        """Count an occurrence of ``code`` at ``where`` and deliver it (once per key by default)."""
        self.findings.report(code, where, **values)

    def check_compiled(self) -> None:
        """Note, once, that forward-time rules cannot see inside compiled code."""
        if self.compiled_seen or _is_compiled(self.model):
            self.compiled_seen = True
            self.findings.notice_compiled()

    def name_of(self, module: nn.Module) -> str | None:
        """``module``'s path in the guarded model, or ``None`` when it is not in it."""
        names = self._names
        if names is None or id(module) not in names:
            names = self._names = {id(m): n for n, m in self.model.named_modules()}
        return names.get(id(module))

    def display(self, name: str) -> str:
        """A module path for messages (the model's label for the root)."""
        return name or self.label

    def sensitive(self, module: nn.Module) -> bool:
        """Whether ``module`` is mode-sensitive (cached; ``unknown`` counts as not)."""
        found = self._sens.get(module)
        if found is None:
            found = self._learn(module)
        return found

    def _learn(self, module: nn.Module) -> bool:
        found = classify(module)
        sensitive = found is not None and found.kind != "unknown"
        self._sens[module] = sensitive
        self._names = None
        if isinstance(module, _BatchNorm) and "TE105" in self.options.rules:
            self._bn_targets.append(module)
            if self.active:
                _interceptor.add_target(module, self._on_bn)
        return sensitive

    # ------------------------------------------------------------------ forward
    def on_root(self, root: nn.Module, args: tuple[Any, ...]) -> Callable[[], None] | None:
        """The interceptor's call for each forward of the guarded model."""
        if self.tls.scoped:
            return None  # inside Guard.scope(): this forward was checked when the scope opened
        if torch.compiler.is_compiling():
            self.compiled_seen = True
            return None
        if self.compiled_seen:
            self.findings.notice_compiled()
        self.forwards += 1
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
            if any_train and self.wants("TE101"):
                self._check_inference()
        else:
            self.steps.on_forward(n_eval)
        if (
            self._trace
            and not self.tls.depth
            and not _compiled_in_place(root)
            and self.tracer.should_trace(n_eval)
        ):
            return self.tracer.enter(root)
        return None

    def _check_inference(self) -> None:
        nodes = _scans.walk(self.model)
        members = [
            n for n in nodes
            if n.module.training and n.pin is not True and self.sensitive(n.module)
        ]
        if not members or _scans.statistics_pass(members):
            return
        context = "torch.inference_mode()" if torch.is_inference_mode_enabled() else "torch.no_grad()"
        for where, group in _scans.group(nodes, members, True, self.sensitive).items():
            self.report(
                "TE101", where, module=self.display(where), context=context, count=len(group),
                examples=_scans.examples(group),
            )

    def _on_bn(self, bn: nn.Module, args: tuple[Any, ...]) -> None:
        if torch.compiler.is_compiling():
            self.compiled_seen = True
        elif _scans.uses_batch_statistics(bn) and self.wants("TE105"):
            self.check_batch(bn, args, bn)

    def check_batch(self, bn: nn.Module, args: tuple[Any, ...], named: nn.Module) -> None:
        """TE105: ``bn`` normalising over fewer values per channel than the threshold."""
        x = args[0] if args else None
        count = _scans.batchnorm_values(bn, x)
        if count is None or count >= self.min_batchnorm_values or not isinstance(x, torch.Tensor):
            return
        where = self.name_of(named)
        if where is None:
            return
        extra = "; with 1 value PyTorch raises" if count == 1 else ""
        self.report(
            "TE105", where, module=self.display(where), type=type(bn).__name__, count=count,
            shape=tuple(x.shape), minimum=self.min_batchnorm_values, extra=extra,
        )


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
    require_module(model)
    inner = _torch.unwrap(model)
    options = parse(
        inner, on=on, rules=rules, allow=allow, once=once, name=name, tracing=tracing,
        min_batchnorm_values=min_batchnorm_values,
    )
    return Guard(model, optimizers(optimizer, inner), options)


def _compiled_in_place(module: nn.Module) -> bool:
    """True when ``module.compile()`` was called before the guard (its interceptor wraps it)."""
    call = module.__dict__.get("_compiled_call_impl")
    return call is not None and (not _interceptor.is_ours(call) or call.previous is not None)


def _is_compiled(model: nn.Module) -> bool:
    call = model.__dict__.get("_compiled_call_impl")
    if _interceptor.is_ours(call):
        call = call.previous
    return isinstance(getattr(model, "_orig_mod", None), nn.Module) or call is not None

