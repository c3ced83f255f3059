"""Recalibration across ``torch.distributed`` ranks: shared failure, agreed levels, Chan's reduction.

No collective is issued per batch; these run once per round (or once per call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from traineval.bnstats._stats import Layer
from traineval.errors import TraineValError, TraineValValueError


class RemoteFailure(TraineValError, RuntimeError):
    """Recalibration failed on another rank; this rank restored its model."""


def together(dist: Any, device: torch.device, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; across ranks, make every rank fail if any rank's ``fn`` raised."""
    err: Exception | None = None
    result = None
    try:
        result = fn()
    except Exception as exc:  # BaseException (KeyboardInterrupt) goes straight up
        err = exc
    if dist is not None:
        flag = torch.tensor([0.0 if err is None else 1.0], dtype=torch.float64, device=device)
        dist.all_reduce(flag)
        failed = int(flag.item())
        if failed and err is None:
            raise RemoteFailure(
                f"recalibration failed on {failed} other rank{'s' if failed != 1 else ''}; "
                "this rank's model was restored"
            )
    if err is not None:
        raise err
    return result


def agree_levels(dist: Any, device: torch.device, layers: Sequence[Layer], levels: dict[int, int]) -> dict[int, int]:
    """Ranks must run the same rounds: check their levels agree (ranks without data follow)."""
    if dist is None:
        return levels
    big = float(1 << 30)
    has = bool(levels)
    vec = [float(levels.get(id(x.module), big - 1)) for x in layers]
    hi = torch.tensor([v if has else -1.0 for v in vec], dtype=torch.float64, device=device)
    lo = torch.tensor([v if has else big for v in vec], dtype=torch.float64, device=device)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    if hi.max().item() < 0:
        return {}
    if not torch.equal(hi, lo):
        raise TraineValValueError(
            "order='layerwise': ranks found different layer dependencies (is the forward "
            "data-dependent?); use order='single-pass'"
        )
    return {id(x.module): int(v) for x, v in zip(layers, hi.tolist(), strict=True) if v < big - 1}


def reduce_group(
    dist: Any,
    group: Sequence[Layer],
    head: torch.Tensor,
    sums: list[torch.Tensor],
    m2s: list[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """All-reduce ``head`` (batches, counts, calls) and the group's (Σx, M2) over ranks.

    Every rank's M2 is moved to the global mean (Chan et al.) before the sum, so the result
    equals one process over the union of the shards.
    """
    g = len(group)
    sizes = [x.num_features for x in group]
    flat = torch.cat([head, *sums])
    dist.all_reduce(flat)
    head, gsums = flat[: 1 + 2 * g], list(torch.split(flat[1 + 2 * g :], sizes))
    parts = []
    for x, s, m2, gs, n in zip(group, sums, m2s, gsums, head[1 : 1 + g].tolist(), strict=True):
        if n == 0 or x.n == 0:
            parts.append(torch.zeros_like(gs))
        else:
            parts.append(m2 + x.n * (s / x.n - gs / n) ** 2)
    flat2 = torch.cat(parts)
    dist.all_reduce(flat2)
    return head, gsums, list(torch.split(flat2, sizes))
