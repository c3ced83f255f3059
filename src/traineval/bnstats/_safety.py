"""What makes a recalibration leave nothing behind on failure or interrupt: every buffer of the
model and the RNG are saved up front, and every hook this package installed is swept at the end,
even one whose handle an interrupt kept from being recorded."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.modules import module as module_mod

from traineval._rng import RngState

_OURS = "traineval.bnstats."


def _ours(fn: object) -> bool:
    return str(getattr(fn, "__module__", "") or "").startswith(_OURS)


def sweep_hooks(model: nn.Module) -> int:
    """Remove every forward (pre-)hook defined in this package from ``model``'s modules and from
    the global module hooks; return how many were left (0 after a clean run)."""
    removed = 0
    tables = [module_mod._global_forward_pre_hooks, module_mod._global_forward_hooks]
    for m in model.modules():
        tables += [m._forward_pre_hooks, m._forward_hooks]
    for table in tables:
        for key, fn in list(table.items()):
            if _ours(fn):
                del table[key]
                removed += 1
    return removed


class StateSnapshot:
    """Every buffer of ``model`` (cloned) and the RNG state, to put back after a failure
    (``dropout="on"`` forwards draw random numbers and may update buffers such as
    spectral norm's ``_u``/``_v``)."""

    def __init__(self, model: nn.Module) -> None:
        self.rng = RngState()
        self.buffers = [
            (m, name, b.detach().clone())
            for m in model.modules()
            for name, b in m._buffers.items()
            if isinstance(b, torch.Tensor)
        ]

    def restore(self) -> None:
        with torch.no_grad():
            for m, name, value in self.buffers:
                buf = m._buffers.get(name)
                if isinstance(buf, torch.Tensor) and buf.shape == value.shape and buf.dtype == value.dtype:
                    buf.copy_(value)
                else:  # replaced meanwhile: put the original back
                    m._buffers[name] = value.clone()
        self.rng.restore()
