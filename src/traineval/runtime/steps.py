"""The guard's step-time checks: TE102 (a step in eval mode) and TE106 (eval inside training).

An optimizer step (or, before the first step is seen, a backward pass) is the moment a
model is trained; at that moment every mode-sensitive module should be training, unless a
policy pins it or it is a frozen part (:func:`traineval.core.mixed.explained_eval`).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from traineval.core import mixed
from traineval.runtime import _interceptor, _scans
from traineval.runtime._host import Host
from traineval.runtime.options import STEP_CODES


class StepWatch:
    """Optimizer-step hooks of one guard, and the backward-pass stand-in before a first step."""

    def __init__(self, guard: Host) -> None:
        self.guard = guard
        self.owner: weakref.WeakKeyDictionary[Any, tuple[int, bool]] = weakref.WeakKeyDictionary()
        self.handles: list[Any] = []
        self.armed: list[Any] = []
        self.fired = False
        self.seen = False  # an optimizer step of this model was seen
        self.forwards_at_step: int | None = None  # forwards seen at the previous step

    def install(self) -> None:
        g = self.guard
        if not g.options.rules & STEP_CODES:
            return
        if g.optimizers:
            for opt in g.optimizers:
                self.handles.append(opt.register_step_pre_hook(self.on_given_step))
        else:
            _interceptor.add_step_handler(self.on_any_step)

    def uninstall(self) -> None:
        _interceptor.remove_step_handler(self.on_any_step)
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.disarm()

    def on_forward(self, n_eval: int) -> None:
        """Called on each forward with gradients on: arm or disarm the backward stand-in."""
        if self.armed or (n_eval and not self.seen):
            self._update_backward_fallback(n_eval > 0)

    def on_given_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._step(optimizer)

    def on_any_step(self, optimizer: Any) -> None:
        groups = len(optimizer.param_groups)
        known = self.owner.get(optimizer)
        if known is None or known[0] != groups:
            params = {id(p) for p in self.guard.model.parameters()}
            owns = any(id(p) in params for g in optimizer.param_groups for p in g["params"])
            known = self.owner[optimizer] = (groups, owns)
        if known[1]:
            self._step(optimizer)

    def _step(self, optimizer: Any) -> None:
        g = self.guard
        # A torch.compile(model) wrapper runs the model's compiled code without its __call__:
        # steps follow each other with no forward seen in between.
        unseen = self.forwards_at_step is not None and g.forwards == self.forwards_at_step
        self.forwards_at_step = g.forwards
        if unseen:
            g.compiled_seen = True
        g.check_compiled()
        self.seen = True
        self.disarm()
        self.check(f"`{type(optimizer).__name__}.step()`")

    def _update_backward_fallback(self, any_eval: bool) -> None:
        g = self.guard
        if not (g.options.rules & STEP_CODES) or not any_eval or self.seen or g.optimizers:
            self.disarm()
            return
        self.fired = False
        if not self.armed:
            self.armed = [
                p.register_post_accumulate_grad_hook(self._on_accumulate)
                for p in g.model.parameters()
                if p.requires_grad
            ]

    def disarm(self) -> None:
        handles, self.armed = self.armed, []
        for handle in handles:
            handle.remove()

    def _on_accumulate(self, param: torch.Tensor) -> None:
        if self.fired or self.seen:
            return
        self.fired = True
        self.check("a backward pass")

    def check(self, trigger: str) -> None:
        """Report the sensitive modules in eval at a training step (``trigger`` names the step)."""
        g = self.guard
        if not (g.wants("TE102") or g.wants("TE106")):
            return
        root = g.model
        if all(m.training for m in _scans.flat(root)):
            return
        nodes = _scans.walk(root)
        members = [
            n
            for n in nodes
            if not n.module.training
            and g.sensitive(n.module)
            and not mixed.explained_eval(n.module, n.parent, n.pin)
        ]
        if not members:
            return
        if not root.training:
            if g.wants("TE102"):
                g.report(
                    "TE102", "", trigger=trigger, module=g.label, count=len(members),
                    examples=_scans.examples(members),
                )
            return
        if not g.wants("TE106"):
            return
        for where, group in _scans.group(nodes, members, False, g.sensitive).items():
            top = next(n.module for n in nodes if n.name == where)
            g.report(
                "TE106", where, trigger=trigger, module=where, type=type(top).__name__,
                model=g.label, count=len(group), examples=_scans.examples(group),
            )
