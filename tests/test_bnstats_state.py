"""What recalibration leaves behind besides the statistics (issue 14): no autograd graph held by
module caches after ``order="layerwise"`` (its analysis forward records a graph)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import traineval as te


class Cache(nn.Module):
    """Keeps what it saw, the way attention-map or feature-hook modules do."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen_mean", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = x * 2
        self.history = [x + 1, ("tag", x.sum())]
        self.by_name = {"max": x.amax()}
        self.seen_mean = x.mean()                      # assigned to a registered buffer
        return x


def model_with_caches() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Cache(), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), Cache()
    )


def attached(module: nn.Module) -> list[str]:
    out = []
    for name, m in module.named_modules():
        if isinstance(m, Cache):
            values = [m.last, *m.history[:1], m.history[1][1], m.by_name["max"], m.seen_mean]
            out += [name for v in values if v.grad_fn is not None or v.requires_grad]
    return out


@pytest.mark.parametrize("order", ["layerwise", "single-pass"])
def test_no_graph_left_in_module_caches_and_deepcopy_works(order):
    model = model_with_caches()
    data = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    te.recalibrate_batchnorm(model, data, order=order, progress=False)
    assert attached(model) == []
    clone = copy.deepcopy(model)                       # raises on a graph-attached tensor
    clone.eval()
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))


def test_the_analysis_forward_would_otherwise_leave_a_graph():
    """The same forward under enable_grad, as the analysis runs it, does attach the caches: the
    test above is not vacuous."""
    model = model_with_caches()
    model(torch.randn(4, 3, 8, 8))
    assert attached(model)
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(model)
