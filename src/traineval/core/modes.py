"""Reading, setting, snapshotting and restoring modes; ``evaluating``/``training``/``inference``.

PyTorch keeps one boolean per module, ``module.training``, and ``model.train(mode)`` sets it
recursively. There is no public way to leave a mixed state for a moment and come back to it
exactly. This module gives that:

>>> import torch.nn as nn, traineval as te
>>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
>>> _ = model[1].eval()                 # a mixed state: root training, dropout in eval
>>> with te.evaluating(model):
...     te.modes(model)
{'': False, '0': False, '1': False}
>>> te.modes(model)                      # restored exactly, mixed state included
{'': True, '0': True, '1': False}
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch
import torch.nn as nn

from traineval.core import pins
from traineval.errors import TraineValValueError, require_module


def modes(model: nn.Module) -> dict[str, bool]:
    """Every named module's ``training`` flag, keyed by its name (the root is ``""``).

    A module registered under two names appears under both. The dict is a snapshot: pass it
    to :func:`set_modes` to restore it.

    >>> import torch.nn as nn, traineval as te
    >>> te.modes(nn.Sequential(nn.Linear(1, 1)).eval())
    {'': False, '0': False}
    """
    require_module(model)
    return {name: m.training for name, m in model.named_modules(remove_duplicate=False)}


def set_modes(model: nn.Module, snapshot: Mapping[str, bool], *, strict: bool = True) -> None:
    """Set every module's ``training`` flag from ``snapshot`` (as made by :func:`modes`).

    Modules are switched top-down through ``train()``, so ``train()`` overrides run as they
    do for ``model.train()``; where that cannot reach the snapshot (mixed states), flags are
    assigned directly, so the result is exactly the snapshot. With ``strict=True`` (the
    default) the snapshot's names must match the model's; on a mismatch nothing is changed
    and ``ValueError`` lists the differences. Modules pinned by a policy keep their pin.

    >>> import torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Dropout(0.1), nn.Dropout(0.2))
    >>> snap = te.modes(model)
    >>> _ = model.eval()
    >>> te.set_modes(model, snap)
    >>> model[1].training
    True
    """
    require_module(model)
    if not isinstance(snapshot, Mapping):
        raise TypeError(
            f"expected a snapshot dict from te.modes(model), got {type(snapshot).__name__}"
        )
    named = list(model.named_modules(remove_duplicate=False))
    names = {name for name, _ in named}
    bad = [k for k, v in snapshot.items() if not isinstance(v, bool)]
    if bad:
        raise TraineValValueError(
            f"snapshot values must be booleans; not so for {', '.join(map(repr, bad[:5]))}"
        )
    if strict:
        missing = sorted(names - set(snapshot))
        extra = sorted(set(snapshot) - names)
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing from the snapshot: " + ", ".join(map(repr, missing[:5])))
            if extra:
                parts.append("not in the model: " + ", ".join(map(repr, extra[:5])))
            raise TraineValValueError(
                "snapshot does not match the model (" + "; ".join(parts) + "); "
                "pass strict=False to restore the names that match"
            )
    restore_flags([(module, snapshot[name]) for name, module in named if name in snapshot])


def restore_flags(flags: list[tuple[nn.Module, bool]]) -> None:
    """Put each module back to its flag through ``train()``, top-down (private building block).

    ``flags`` lists modules parents first (``model.modules()`` order). A module whose flag
    differs gets ``module.train(flag)``, so ``train()`` overrides run (caches they clear,
    frozen stages they keep in eval) exactly as in a plain ``model.eval()`` … ``model.train()``
    loop. Where ``train()`` cannot reach the wanted flag (an override that refuses it, a
    mixed state), the flag is assigned directly; policy pins always win. If an override
    raises, every flag is still assigned before the error propagates.
    """
    try:
        for module, flag in flags:
            if module.training != flag:
                module.train(flag)
    finally:
        for module, flag in flags:
            wanted = pins.effective_flag(module, flag)
            if module.training != wanted:
                module.training = wanted


class ModeSnapshot:
    """Every module's flag, kept by module identity (internal building block).

    Survives renames and modules removed in the meantime; :meth:`restore` puts the flags
    back through ``train()`` (see :func:`restore_flags`; policy pins respected). Used by
    every traineval function that must leave a model's modes as it found them.
    """

    __slots__ = ("flags",)

    def __init__(self, models: tuple[nn.Module, ...]) -> None:
        self.flags: list[tuple[nn.Module, bool]] = []
        seen: set[int] = set()
        for model in models:
            for module in model.modules():
                if id(module) not in seen:
                    seen.add(id(module))
                    self.flags.append((module, module.training))

    def restore(self) -> None:
        restore_flags(self.flags)


class _ModeContext(contextlib.ContextDecorator):
    """Switch models to one mode, restore every module's flag exactly on exit."""

    _mode: bool = False
    _inference: bool = False

    def __init__(self, model: nn.Module, *more_models: nn.Module) -> None:
        models = (model, *more_models)
        for i, m in enumerate(models):
            require_module(m, "model" if i == 0 else f"model #{i + 1}")
        self.models = models
        self._stack: list[tuple[ModeSnapshot, contextlib.ExitStack]] = []

    def __enter__(self) -> nn.Module | tuple[nn.Module, ...]:
        snapshot = ModeSnapshot(self.models)
        stack = contextlib.ExitStack()
        try:
            for m in self.models:
                m.train(self._mode)  # through train(): overrides and policies respected
            if self._inference:
                stack.enter_context(torch.inference_mode())
        except BaseException:
            stack.close()
            snapshot.restore()
            raise
        self._stack.append((snapshot, stack))
        return self.models[0] if len(self.models) == 1 else self.models

    def __exit__(self, *exc: object) -> None:
        snapshot, stack = self._stack.pop()
        try:
            stack.close()
        finally:
            snapshot.restore()

    def _recreate_cm(self) -> _ModeContext:
        # ContextDecorator reuses self for every decorated call; a per-entry stack makes
        # recursion and threads that share the decorator safe enough.
        return self

    def __repr__(self) -> str:
        names = ", ".join(type(m).__name__ for m in self.models)
        return f"{type(self).__name__.lstrip('_')}({names})"


class evaluating(_ModeContext):
    """Put models in eval mode; on exit restore every module's flag exactly.

    Restores on a normal exit, an exception or ``KeyboardInterrupt``, mixed states included.
    Nests, and works as a decorator. Entering calls ``model.eval()``, so ``train()``
    overrides and policies are respected; exit assigns the saved flags back. Does not touch
    gradient tracking (see :class:`inference`). A module added inside the block keeps the
    mode it has; a module removed inside the block is still restored.

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    >>> with te.evaluating(model):             # validation pass
    ...     model.training
    False
    >>> model.training                          # back to training for the next epoch
    True
    >>> @te.evaluating(model)                   # as a decorator
    ... def validate():
    ...     return model[1].training
    >>> validate()
    False
    """

    _mode = False


class training(_ModeContext):
    """Put models in training mode; on exit restore every module's flag exactly.

    The mirror of :class:`evaluating`: calls ``model.train()`` (policies such as a frozen
    BatchNorm are kept), restores on any exit, nests, works as a decorator.

    >>> import torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).eval()
    >>> with te.training(model):
    ...     model[1].training
    True
    >>> model[1].training
    False
    """

    _mode = True


class inference(_ModeContext):
    """:class:`evaluating` plus ``torch.inference_mode()``: what inference needs.

    ``torch.no_grad()``/``torch.inference_mode()`` only switch off gradient tracking; they
    do not change the mode. This does both, and restores the modes on exit.

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    >>> with te.inference(model):
    ...     y = model(torch.ones(1, 4))
    >>> y.requires_grad, model.training
    (False, True)
    """

    _mode = False
    _inference = True
