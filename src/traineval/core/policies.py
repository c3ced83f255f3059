"""Persistent per-module mode policies: frozen BatchNorm, Monte-Carlo dropout. Reversible.

``model.train()`` and ``model.eval()`` set every module's flag; a policy keeps chosen modules
at a chosen flag through any later ``train()``/``eval()`` on any ancestor, without replacing
modules — types, parameters, buffers and ``state_dict`` keys and values are unchanged, and
``copy.deepcopy`` carries the policy along. ``policy.undo()`` (or leaving its ``with`` block)
removes it.

>>> import torch.nn as nn, traineval as te
>>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
>>> policy = te.freeze_batchnorm(model)
>>> model.train()[1].training            # BatchNorm stays in eval through model.train()
False
>>> policy.undo(); model.train()[1].training
True
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

from traineval.core import mcprobe, pins
from traineval.core.modes import ModeSnapshot
from traineval.core.sensitivity import classify, is_norm_with_running_stats
from traineval.errors import TraineValTypeError, TraineValValueError, TraineValWarning, require_module

_ids = itertools.count(1)
_DROPOUT_KINDS = ("dropout", "attention", "recurrent")
_CUSTOM_KINDS = ("custom", "unknown")


class Policy:
    """A reversible set of mode pins (and, optionally, frozen parameters) on one model.

    Created by :func:`freeze_batchnorm` or :func:`mc_dropout`. Use :meth:`undo` to remove it,
    or use it as a context manager: leaving the block undoes the policy and restores every
    module's mode as it was when the policy was made.

    >>> import torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.BatchNorm1d(3))
    >>> with te.freeze_batchnorm(model) as policy:
    ...     policy.names
    ['0']
    """

    def __init__(self, name: str, model: nn.Module) -> None:
        self.name = name
        self.id = next(_ids)
        self._model = model
        self._pinned: list[tuple[str, nn.Module, bool]] = []
        self._grads: list[tuple[torch.nn.Parameter, bool]] = []
        self._modes = ModeSnapshot((model,))
        self.active = False

    @property
    def names(self) -> list[str]:
        """Names (within the model) of the modules the policy pins."""
        return [name for name, _, _ in self._pinned]

    @property
    def modules(self) -> list[nn.Module]:
        """The modules the policy pins."""
        return [module for _, module, _ in self._pinned]

    def _apply(self, targets: list[tuple[str, nn.Module, bool]]) -> None:
        for name, module, flag in targets:  # refuse before changing anything
            pins.check_pin(module, flag, self.name, name)
        try:
            for name, module, flag in targets:
                self._pinned.append((name, module, flag))  # first: a fault in add_pin is undone
                pins.add_pin(module, self.id, flag, self.name)
        except BaseException:
            self._remove_pins()
            self._pinned.clear()
            self._modes.restore()
            raise
        self.active = True

    def _freeze_params(self, params: Iterable[torch.nn.Parameter]) -> None:
        for p in params:
            self._grads.append((p, p.requires_grad))
        for p, _ in self._grads:
            p.requires_grad_(False)

    def _remove_pins(self) -> None:
        for _, module, _ in self._pinned:
            pins.remove_pin(module, self.id)

    def undo(self, *, restore_modes: bool = False) -> None:
        """Remove the policy (idempotent).

        Pinned modules are released and take the current mode of their parent module, so
        during training a frozen BatchNorm trains again at once. ``restore_modes=True``
        instead restores every module's flag as it was when the policy was made.
        Parameters frozen by the policy get their ``requires_grad`` back.
        """
        if not self.active:
            return
        self.active = False
        requested = {id(m): pins.requested_flag(m) for _, m, _ in self._pinned}
        self._remove_pins()
        for p, flag in self._grads:
            p.requires_grad_(flag)
        if restore_modes:
            self._modes.restore()
            return
        parents = _parents(self._model)
        saved = {id(m): flag for m, flag in self._modes.flags}
        for _, module, _ in self._pinned:
            parent = parents.get(id(module))
            if parent is not None:
                module.train(parent.training)
            else:  # the root: the mode last asked of it, else its flag from before the policy
                asked = requested.get(id(module))
                module.train(saved.get(id(module), module.training) if asked is None else asked)

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.undo(restore_modes=True)

    def __repr__(self) -> str:
        state = "active" if self.active else "undone"
        return f"<Policy {self.name}: {len(self._pinned)} modules, {state}>"


def _parents(model: nn.Module) -> dict[int, nn.Module]:
    parents: dict[int, nn.Module] = {}
    for module in model.modules():
        for child in module.children():
            parents.setdefault(id(child), module)
    return parents


def _select(
    model: nn.Module,
    modules: Iterable[str | nn.Module] | str | nn.Module | None,
    keep: Callable[[nn.Module], bool],
) -> list[tuple[str, nn.Module]]:
    """The modules under ``modules`` (names or module objects of ``model``) that ``keep``."""
    names = {id(m): n for n, m in model.named_modules()}
    if modules is None:
        roots = [model]
    else:
        if isinstance(modules, (str, nn.Module)):
            modules = [modules]
        roots = []
        for item in modules:
            if isinstance(item, str):
                try:
                    roots.append(model.get_submodule(item))
                except AttributeError:
                    raise TraineValValueError(
                        f"model has no submodule named {item!r}; names look like "
                        f"{', '.join(repr(n) for n in list(names.values())[1:4]) or 'none'}"
                    ) from None
            elif isinstance(item, nn.Module):
                if id(item) not in names:
                    raise TraineValValueError(
                        f"{type(item).__name__} passed in modules= is not a submodule of the model"
                    )
                roots.append(item)
            else:
                raise TraineValTypeError(
                    f"modules= expects submodule names or nn.Module objects, got {type(item).__name__}"
                )
    out: dict[int, tuple[str, nn.Module]] = {}
    for root in roots:
        for m in root.modules():
            if keep(m) and id(m) in names:
                out.setdefault(id(m), (names[id(m)], m))
    return list(out.values())


def freeze_batchnorm(
    model: nn.Module,
    modules: Iterable[str | nn.Module] | str | nn.Module | None = None,
    *,
    freeze_affine: bool = False,
) -> Policy:
    """Keep BatchNorm layers in eval mode through any later ``model.train()``.

    Frozen layers normalise with their running statistics and stop updating them, while the
    rest of the model trains — the usual fine-tuning set-up for small batches. Covers every
    normalisation layer with running statistics (BatchNorm1d/2d/3d, Lazy, SyncBatchNorm,
    InstanceNorm with ``track_running_stats=True``, subclasses). ``modules`` limits the
    policy to some submodules (names or module objects; containers include their
    descendants). ``freeze_affine=True`` also sets ``requires_grad=False`` on their weight
    and bias. Modules are not replaced; ``undo()`` restores everything.

    >>> import torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    >>> policy = te.freeze_batchnorm(model, freeze_affine=True)
    >>> _ = model.train()
    >>> model[1].training, model[1].weight.requires_grad
    (False, False)
    >>> policy.undo(); model[1].training, model[1].weight.requires_grad
    (True, True)
    """
    require_module(model)
    targets = _select(model, modules, is_norm_with_running_stats)
    policy = Policy("freeze_batchnorm", model)
    if not targets:
        warnings.warn(
            "freeze_batchnorm: no normalisation layer with running statistics found; nothing frozen",
            TraineValWarning,
            stacklevel=2,
        )
        return policy
    policy._apply([(name, m, False) for name, m in targets])
    if freeze_affine:
        policy._freeze_params(
            p for _, m in targets for p in (getattr(m, "weight", None), getattr(m, "bias", None))
            if isinstance(p, torch.nn.Parameter)
        )
    return policy


def mc_dropout(
    model: nn.Module,
    modules: Iterable[str | nn.Module] | str | nn.Module | None = None,
    *,
    example: Any = None,
) -> Policy:
    """Monte-Carlo dropout: every dropout stays active while everything else is in eval.

    Puts the model in eval mode and pins its dropout layers (the Dropout family, attention
    and recurrent dropout) to training mode and its other mode-sensitive layers to eval, so
    the policy survives ``model.train()``/``model.eval()``. Normalisation layers with running
    statistics are always pinned to eval (their statistics stay frozen), even under a
    container listed in ``modules``.

    Custom modules that read ``self.training`` (Hugging Face attention layers gating
    ``F.dropout(training=self.training)`` or SDPA's ``dropout_p``) are decided on a probe
    forward of ``example``: those whose flag gates only randomness are pinned to training,
    those that compute batch statistics or write buffers stay in eval. Without ``example``
    they stay in eval (and a warning says so). A warning is also given when nothing
    stochastic remains active.

    Args:
        model: the model.
        modules: limit the active dropout to these submodules (names or modules; containers
            include their descendants).
        example: an input, called as ``model(example)`` (``model(*example)`` for a tuple,
            ``model(**example)`` for a dict), used once for the probe; nothing is changed by it.

    Returns:
        The :class:`Policy` (a context manager restoring the previous modes on exit).

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    >>> with te.mc_dropout(model):
    ...     _ = model.train()                 # the policy survives train()
    ...     model[1].training, model[2].training
    (False, True)
    >>> model[2].training                      # restored on exit
    True
    """
    require_module(model)
    policy = Policy("mc_dropout", model)
    found = {id(m): k for _, m in model.named_modules() if (k := _kind(m)) is not None}
    custom = [m for m in model.modules() if found.get(id(m)) in _CUSTOM_KINDS]
    verdicts = mcprobe.probe_custom(model, example, custom) if example is not None else {}

    def dropout_like(m: nn.Module) -> bool:
        kind = found.get(id(m))
        return kind in _DROPOUT_KINDS or (kind in _CUSTOM_KINDS and verdicts.get(id(m)) == "dropout")

    if modules is None:
        active = _select(model, None, dropout_like)
    else:  # listed custom modules may be made active, unless the probe saw statistics
        active = _select(
            model,
            modules,
            lambda m: dropout_like(m)
            or (found.get(id(m)) in _CUSTOM_KINDS and id(m) not in verdicts and not _has_own_stats(m)),
        )
    active_ids = {id(m) for _, m in active}
    frozen = _select(model, None, lambda m: id(m) in found and id(m) not in active_ids)
    _warn_if_deterministic(active, [m for m in custom if id(m) not in verdicts and id(m) not in active_ids])
    try:
        model.eval()
        policy._apply([(n, m, True) for n, m in active] + [(n, m, False) for n, m in frozen])
    except BaseException:
        policy._modes.restore()
        raise
    return policy


def _has_own_stats(module: nn.Module) -> bool:
    return is_norm_with_running_stats(module)


def _stochastic(module: nn.Module) -> bool:
    p = getattr(module, "p", None)
    if isinstance(p, (int, float)):
        return p > 0
    p = getattr(module, "dropout", None)  # LSTM/GRU/RNN
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        return p > 0
    return True  # custom or attention: assume it draws


def _warn_if_deterministic(active: list[tuple[str, nn.Module]], unprobed: list[nn.Module]) -> None:
    if unprobed:
        names = sorted({type(m).__name__ for m in unprobed})
        warnings.warn(
            f"mc_dropout: {len(unprobed)} custom module(s) reading self.training ({', '.join(names[:3])}) "
            "stay in eval, so any dropout they gate stays off: pass example= so mc_dropout can tell "
            "what their flag gates",
            TraineValWarning,
            stacklevel=3,
        )
    if not any(_stochastic(m) for _, m in active):
        warnings.warn(
            "mc_dropout: the model has no active dropout layer: nothing stochastic remains, "
            "every Monte-Carlo sample will be identical",
            TraineValWarning,
            stacklevel=3,
        )


def _kind(module: nn.Module) -> str | None:
    found = classify(module)
    return None if found is None else found.kind
