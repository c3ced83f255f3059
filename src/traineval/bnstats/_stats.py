"""Float64 pooled statistics of one normalisation layer, and its saved state.

Batches are checked here (tensor, floating point, channel count, more than one value per
channel) and reduced to a float64 sum and a biased variance per channel.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from traineval.core.sensitivity import has_torch_forward
from traineval.errors import TraineValTypeError, TraineValValueError, describe_value

_EXACT = (torch.float32, torch.float64)


def buffer(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>`` as a tensor (a norm layer's ``running_mean``/``running_var``)."""
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise TraineValTypeError(f"{type(module).__name__}.{name} is {describe_value(value)}, expected a tensor")
    return value


class Layer:
    """One normalisation layer: its saved state and its float64 sufficient statistics.

    Statistics are kept relative to a per-channel shift ``k`` (the first batch's mean), so
    that no sum loses precision however large the mean is against the spread: ``s`` is
    Σ(x − k), ``t`` is Σ_batches (Σ_batch(x − k))² / n_batch and ``w`` is Σ_batches of the
    batch's centred sum of squares. Then mean = k + s/n and M2 = w + t − s²/n.
    """

    def __init__(self, name: str, module: nn.Module) -> None:
        from torch.nn.modules.batchnorm import _BatchNorm
        from torch.nn.modules.instancenorm import _InstanceNorm

        self.name = name
        self.module = module
        self.instance = isinstance(module, _InstanceNorm)
        # torch's own BatchNorm forward in eval mode normalises with the buffers: we put the
        # batch's statistics there, which reproduces train-mode output without the batch
        # statistics being computed twice and without any collective (SyncBatchNorm).
        self.substitute = isinstance(module, _BatchNorm) and has_torch_forward(module)
        self.saved = {k: b.detach().clone() for k, b in module.named_buffers(recurse=False) if b is not None}
        self.num_features = int(buffer(module, "running_mean").numel())
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.calls = 0
        self.k: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.w: torch.Tensor | None = None

    def restore(self) -> None:
        for key, value in self.saved.items():
            buf = getattr(self.module, key, None)
            if isinstance(buf, torch.Tensor) and buf.shape == value.shape:
                buf.copy_(value)
            else:  # replaced meanwhile: put the original back
                setattr(self.module, key, value.clone())

    def batch(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Check a layer input; return (float64 sum, biased variance, values per channel)."""
        where = f"layer `{self.name or '<model>'}` ({type(self.module).__name__})"
        if not isinstance(x, torch.Tensor):
            raise TraineValTypeError(f"{where} received {describe_value(x)}, expected a tensor")
        x = x.detach()
        if not x.is_floating_point():
            raise TraineValTypeError(f"{where} received a {x.dtype} tensor, expected floating point")
        no_batch_dim = getattr(self.module, "_get_no_batch_dim", lambda: -1)()
        cdim = 0 if self.instance and x.dim() == no_batch_dim else 1
        if x.dim() < 2 or x.shape[cdim] != self.num_features:
            raise TraineValValueError(
                f"{where} received input of shape {tuple(x.shape)}, expected {self.num_features} "
                f"channels in dimension {cdim}"
            )
        per_channel = x.numel() // self.num_features
        per_group = per_channel // (x.shape[0] if self.instance and cdim == 1 else 1)
        if per_group <= 1:
            unit = "spatial element per instance" if self.instance else "value per channel"
            raise TraineValValueError(
                f"{where} received one {unit} (input shape {tuple(x.shape)}): batch statistics "
                "are undefined — use batches of at least 2 samples (or more positions)"
            )
        dims = tuple(d for d in range(x.dim()) if d != cdim)
        xv = x if x.dtype in _EXACT else x.float()
        # exact mean, however far from zero: float64 accumulation (over the contiguous inner
        # dims first when it can: ~5x faster on CPU for conv feature maps than over (0, 2, 3))
        if cdim == 1 and x.dim() > 2 and x.is_contiguous():
            total = x.flatten(2).sum(2, dtype=torch.float64).sum(0)
        else:
            total = x.sum(dims, dtype=torch.float64)
        var = None
        if cdim == 1:
            # BatchNorm's own statistics kernel: 2-8x faster on CPU than var_mean over these
            # dims, and as exact unless a channel's mean dwarfs its spread (|mean| > 100 std),
            # where its rounding grows as (mean/std)^2; those batches take var_mean below.
            _, fast = torch.batch_norm_update_stats(xv, None, None, 1.0)
            mean = total / per_channel
            if not bool((mean * mean > 1e4 * fast.to(torch.float64)).any()):
                var = fast
        if var is None:
            var, _ = torch.var_mean(xv, dims, correction=0)  # one Welford pass (double accumulators on CPU)
        return total, var, per_channel

    def add(self, total: torch.Tensor, var: torch.Tensor, n: int) -> None:
        if self.k is None:
            self.k = total / n
            self.s = torch.zeros_like(total)
            self.t = torch.zeros_like(total)
            self.w = torch.zeros_like(total)
        k, s, t, w = self.k, self.s, self.t, self.w
        assert s is not None and t is not None and w is not None
        d = torch.sub(total, k, alpha=n)  # Σ(x − k) of this batch
        s.add_(d)
        t.addcmul_(d, d, value=1.0 / n)
        w.add_(var.to(torch.float64), alpha=n)
        self.n += n
        self.calls += 1

    def local(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σx, M2) of this process, float64 (zeros when the layer was not reached)."""
        if self.k is None:
            zero = torch.zeros(self.num_features, dtype=torch.float64, device=like.device)
            return zero, zero.clone()
        s, t, w, n = self.s, self.t, self.w, self.n
        assert s is not None and t is not None and w is not None
        m2 = (w + t - s * s / n).clamp_min_(0.0)
        return self.k * n + s, m2
