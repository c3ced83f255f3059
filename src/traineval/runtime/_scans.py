"""Walking a guarded model: flat module lists, policy pins, grouping of findings (private).

Kept separate from :mod:`traineval.runtime.guard` so the hot path (one flat walk per forward) is
easy to read and measure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from traineval.core import mixed, pins


def flat(root: nn.Module) -> list[nn.Module]:
    """Every module under ``root`` (root first), breadth first, without names.

    About five times cheaper than ``root.modules()``, which builds a name for every module;
    a module registered twice appears twice (harmless for reading flags).
    """
    out = [root]
    i = 0
    while i < len(out):
        for child in out[i]._modules.values():
            if child is not None:
                out.append(child)
        i += 1
    return out


@dataclass(frozen=True)
class Node:
    """One module of the tree with its name, parent and the policy pin that governs it.

    ``pin`` is the flag a traineval policy pins this module or its nearest pinned ancestor
    to (a pinned module's children follow the pin), ``None`` when no policy applies.
    """

    name: str
    module: nn.Module
    parent: nn.Module | None
    pin: bool | None


def walk(root: nn.Module) -> list[Node]:
    """Every module once, in ``named_modules`` order, with parent and governing pin."""
    out: list[Node] = []
    seen: set[int] = set()
    todo: list[tuple[str, nn.Module, nn.Module | None, bool | None]] = [("", root, None, None)]
    while todo:
        name, module, parent, pin = todo.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        own = pins.pinned_flag(module)
        pin = own if own is not None else pin
        out.append(Node(name, module, parent, pin))
        for child_name, child in reversed(module._modules.items()):
            if child is not None:
                todo.append((f"{name}.{child_name}" if name else child_name, child, module, pin))
    return out


def group(
    nodes: list[Node], members: list[Node], flag: bool, sensitive: Callable[[nn.Module], bool]
) -> dict[str, list[Node]]:
    """Group ``members`` (modules whose flag is ``flag``) at their top-most ancestor in the
    same mode (:func:`traineval.core.mixed.top_groups`), so ``backbone.eval()`` gives one
    group ``backbone``."""
    flags = {n.name: n.module.training for n in nodes}
    by_name = {n.name: n for n in members}
    names = [n.name for n in nodes if sensitive(n.module)]
    grouped = mixed.top_groups(flags, [n.name for n in members], flag, names)
    return {top: [by_name[name] for name in group] for top, group in grouped.items()}


def examples(members: list[Node], limit: int = 3) -> str:
    """``bn1 (BatchNorm2d), drop (Dropout) and 4 more`` — the first few members, named."""
    shown = ", ".join(f"{n.name or '<model>'} ({type(n.module).__name__})" for n in members[:limit])
    more = len(members) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def statistics_pass(members: list[Node]) -> bool:
    """True when the training BatchNorm layers among ``members`` all have ``momentum`` None or
    1.0: a pass that re-estimates running statistics (``torch.optim.swa_utils.update_bn``,
    fvcore's ``update_bn_stats``), which runs in training mode under ``no_grad`` on purpose."""
    norms = [n.module for n in members if isinstance(n.module, _BatchNorm)]
    return bool(norms) and all(m.momentum is None or m.momentum == 1.0 for m in norms)


def batchnorm_values(module: nn.Module, x: object) -> int | None:
    """How many values per channel ``module`` (a BatchNorm using batch statistics) normalises
    over for input ``x``: batch × spatial size, times the process count for SyncBatchNorm.
    ``None`` when ``x`` is not a tensor with a channel dimension."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] == 0:
        return None
    count = x.numel() // x.shape[1]
    if isinstance(module, nn.SyncBatchNorm) and module.training:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            count *= dist.get_world_size(module.process_group)
    return count


def uses_batch_statistics(module: nn.Module) -> bool:
    """True for a BatchNorm that normalises with batch statistics in its current mode."""
    return isinstance(module, _BatchNorm) and (module.training or module.running_mean is None)
