"""NaN/inf in a batch (issue 14): an error naming the layer and the batch, the model unchanged;
``check_finite=False`` opts out."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import traineval as te
import traineval.examples as ex


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def batches(bad_at: int, value: float, n: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    out = [torch.randn(8, 3, 16, 16) for _ in range(n)]
    out[bad_at][1, 2, 3, 4] = value
    return out


@pytest.mark.parametrize("order", ["single-pass", "layerwise"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("bad_at", [0, 2])
def test_non_finite_batch_names_layer_and_batch_and_changes_nothing(order, value, bad_at):
    model = ex.small_resnet()
    model.train()
    before = state(model)
    with pytest.raises(te.TraineValError) as info:
        te.recalibrate_batchnorm(model, batches(bad_at, value), order=order, progress=False)
    message = str(info.value)
    first_bn = next(name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))
    assert f"`{first_bn}`" in message and "NaN or inf" in message
    # the layer-wise analysis forward reads batch 0 first, then each round starts at batch 0 again
    assert f"batch {bad_at} " in message
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"{k} changed"
    assert all(m.training for m in model.modules())


def test_nan_produced_inside_the_model_names_the_downstream_layer():
    class Blowup(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.log()                                    # log of negatives: NaN

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Blowup(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    before = state(model)
    with pytest.raises(te.TraineValError, match=r"layer `4` \(BatchNorm2d\) received NaN or inf in batch 0"):
        te.recalibrate_batchnorm(model, batches(0, 0.0, n=2), progress=False)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_opt_out_pools_non_finite_values():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    report = te.recalibrate_batchnorm(model, batches(1, math.nan), check_finite=False, progress=False)
    first = model[0]
    assert torch.isnan(first.running_mean[2]) and torch.isnan(first.running_var[2])   # channel 2 saw the NaN
    assert torch.isfinite(first.running_mean[:2]).all() and torch.isfinite(first.running_var[:2]).all()
    assert torch.isnan(model[2].running_mean).all()            # the conv spread it to every channel
    assert report.layers[0].samples == 4 * 8 * 16 * 16
