"""Per-module mode pins: the mechanism behind policies (private).

A pinned module gets an instance attribute ``train`` (a :class:`_PinnedTrain`) that shadows
``nn.Module.train``. ``nn.Module.train`` reaches children through ``child.train(mode)``, so
any ancestor's ``train()``/``eval()`` goes through the pin, which keeps the pinned flag.
Nothing else about the module changes: its type, parameters, buffers and ``state_dict``
stay as they were. The pin is an ordinary attribute, so ``copy.deepcopy`` and pickling carry
it along (deepcopy re-points it at the copy).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from traineval.errors import TraineValValueError

_ATTR = "train"


class _PinnedTrain:
    """Callable stand-in for ``module.train`` that keeps the pinned flag."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.pins: list[tuple[int, bool, str]] = []  # (policy id, flag, policy name)
        self.requested: bool | None = None  # the mode last asked for through train()

    @property
    def flag(self) -> bool:
        return self.pins[-1][1]

    def __call__(self, mode: bool = True) -> nn.Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        module = self.module
        self.requested = mode
        # The class's own train() runs with the pinned flag, so overrides and children
        # (a pinned module's children follow the pin) behave as for a normal call.
        type(module).train(module, self.flag)
        return module

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.module, self.pins))


def _rebuild(module: nn.Module, pins: list[tuple[int, bool, str]]) -> _PinnedTrain:
    pinned = _PinnedTrain(module)
    pinned.pins = list(pins)
    return pinned


def pinned_flag(module: nn.Module) -> bool | None:
    """The flag a policy pins ``module`` to, or ``None`` when it is not pinned."""
    pinned = module.__dict__.get(_ATTR)
    if isinstance(pinned, _PinnedTrain) and pinned.pins:
        return pinned.flag
    return None


def pin_owners(module: nn.Module) -> list[str]:
    """Names of the policies pinning ``module`` (outermost first)."""
    pinned = module.__dict__.get(_ATTR)
    if isinstance(pinned, _PinnedTrain):
        return [name for _, _, name in pinned.pins]
    return []


def check_pin(module: nn.Module, flag: bool, policy_name: str, module_name: str) -> None:
    """Raise if ``module`` is already pinned to the other flag by another policy."""
    current = pinned_flag(module)
    if current is not None and current != flag:
        owners = ", ".join(pin_owners(module))
        raise TraineValValueError(
            f"cannot apply {policy_name}: `{module_name or '<model>'}` "
            f"({type(module).__name__}) is already pinned to "
            f"{'training' if current else 'eval'} mode by {owners}; undo that policy first"
        )


def add_pin(module: nn.Module, policy_id: int, flag: bool, policy_name: str) -> None:
    """Pin ``module`` to ``flag`` for policy ``policy_id`` and set the flag now."""
    pinned = module.__dict__.get(_ATTR)
    if not isinstance(pinned, _PinnedTrain):
        pinned = _PinnedTrain(module)
        object.__setattr__(module, _ATTR, pinned)
    pinned.pins.append((policy_id, flag, policy_name))
    module.training = flag


def remove_pin(module: nn.Module, policy_id: int) -> None:
    """Remove policy ``policy_id``'s pin from ``module`` (no-op if absent)."""
    pinned = module.__dict__.get(_ATTR)
    if not isinstance(pinned, _PinnedTrain):
        return
    pinned.pins = [p for p in pinned.pins if p[0] != policy_id]
    if not pinned.pins:
        del module.__dict__[_ATTR]


def effective_flag(module: nn.Module, flag: bool) -> bool:
    """``flag``, unless a policy pins ``module`` to another value."""
    pinned = pinned_flag(module)
    return flag if pinned is None else pinned


def requested_flag(module: nn.Module) -> bool | None:
    """The mode last asked of a pinned ``module`` through ``train()``, if any."""
    pinned = module.__dict__.get(_ATTR)
    return pinned.requested if isinstance(pinned, _PinnedTrain) else None
