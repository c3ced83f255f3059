"""Transactional bookkeeping for the eval contract: module state and global RNG (private).

:class:`StateLedger` snapshots the parameters, buffers and simple attributes of every module it
is shown — the model's own before the first forward, and any other module (held in a plain
list, built inside ``forward``) the first time it runs — reports what changed, and puts every
value and every tensor object back. :class:`RngState` saves and restores the global generators
(torch CPU, CUDA when initialised, Python's ``random``, NumPy's legacy global state when NumPy
is imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

_SIMPLE = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Change:
    """One tensor of a module that differs from its snapshot."""

    module: nn.Module
    name: str  # e.g. "running_mean"
    how: str  # "changed (max |Δ| = 0.31)", "replaced", "added", "removed"


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and values, NaNs at the same places and zeros with the same sign."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if torch.equal(a, b):
        return bool(not a.is_floating_point() or torch.equal(a.signbit(), b.signbit()))
    if not a.is_floating_point():
        return False
    nan_a, nan_b = a.isnan(), b.isnan()
    return torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b])


def _max_delta(now: torch.Tensor, before: torch.Tensor) -> str:
    if now.shape != before.shape or now.dtype.is_complex:
        return "changed"
    delta = (now.detach().double() - before.double()).abs()
    delta = delta[~delta.isnan()]
    return f"changed (max |Δ| = {float(delta.max()):.3g})" if delta.numel() else "changed (NaN)"


class StateLedger:
    """Snapshot, diff and restore the state of modules (parameters, buffers, simple attributes)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        self._order: list[int] = []

    def add(self, module: nn.Module) -> None:
        """Snapshot ``module`` unless already known (does not recurse)."""
        if id(module) in self._seen:
            return
        Pair = tuple[torch.Tensor | None, torch.Tensor | None]
        params: dict[str, Pair] = {k: (v, v.detach().clone()) for k, v in module._parameters.items() if v is not None}
        params.update({k: (None, None) for k, v in module._parameters.items() if v is None})
        buffers: dict[str, Pair] = {k: (v, v.detach().clone()) for k, v in module._buffers.items() if v is not None}
        buffers.update({k: (None, None) for k, v in module._buffers.items() if v is None})
        attrs = {
            k: v
            for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and isinstance(v, _SIMPLE)
        }
        attrs["training"] = module.training  # restored only on request (see restore)
        self._seen[id(module)] = (module, params, buffers, attrs)
        self._order.append(id(module))

    def add_tree(self, model: nn.Module) -> None:
        """Snapshot ``model`` and every registered submodule."""
        for module in model.modules():
            self.add(module)

    def changes(self) -> list[Change]:
        """Every parameter or buffer that differs from its snapshot, modules in snapshot order."""
        out: list[Change] = []
        for key in self._order:
            module, params, buffers, _ = self._seen[key]
            for store, saved in ((module._parameters, params), (module._buffers, buffers)):
                for name, (obj, clone) in saved.items():
                    if name not in store:
                        out.append(Change(module, name, "removed"))
                        continue
                    now = store[name]
                    if obj is None or now is None:
                        if (obj is None) != (now is None):
                            out.append(Change(module, name, "replaced"))
                        continue
                    if not bits_equal(now.detach(), clone):
                        how = _max_delta(now, clone)
                        out.append(Change(module, name, how if now is obj else f"replaced by a new tensor, {how}"))
                    elif now is not obj:
                        out.append(Change(module, name, "replaced by a new tensor (same values)"))
                out.extend(Change(module, name, "added") for name in store if name not in saved)
        return out

    def restore(self, *, modes: bool = False) -> None:
        """Put every tensor object and value back, drop added ones, restore simple attributes
        (and, with ``modes=True``, every module's ``training`` flag as first seen)."""
        with torch.no_grad():
            for key in self._order:
                module, params, buffers, attrs = self._seen[key]
                for store, saved in ((module._parameters, params), (module._buffers, buffers)):
                    for name in [n for n in store if n not in saved]:
                        del store[name]
                    for name, (obj, clone) in saved.items():
                        if store.get(name, 0) is not obj:
                            store[name] = obj
                        if obj is not None and not bits_equal(obj.detach(), clone):
                            obj.detach().copy_(clone)
                current = vars(module)
                for name, value in attrs.items():
                    if name == "training" and not modes:
                        continue
                    if current.get(name, _MISSING) is not value:
                        object.__setattr__(module, name, value)


_MISSING = object()
