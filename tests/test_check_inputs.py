"""``te.check`` refuses bad data and bad options before it changes anything."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import traineval as te
from traineval.errors import TraineValError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2)).train()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["all", "one"])
def test_a_non_finite_example_is_an_error_not_a_pass(bad: float, where: str) -> None:
    model = _model()
    x = torch.randn(8, 4)
    if where == "all":
        x.fill_(bad)
    else:
        x[3, 1] = bad
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TraineValError, match="NaN/inf"):
        te.check(model, x)
    with pytest.raises(TraineValError, match="NaN/inf"):
        te.check(model, {"x": torch.randn(8, 4), "y": x}, forward=lambda m, b: m(b["y"]))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(("option", "value"), [
    ("atol", -1), ("rtol", -1e-3), ("atol", math.nan), ("rtol", math.inf), ("atol", "1e-3"), ("rtol", True),
    ("gap_threshold", 0), ("gap_threshold", -2.0), ("gap_threshold", math.nan), ("gap_threshold", "1"),
    ("train_checks", "yes"),
])
def test_invalid_options_are_one_clear_error(option: str, value: object) -> None:
    model = _model()
    with pytest.raises(TraineValError, match=option):
        te.check(model, torch.randn(8, 4), **{option: value})
    assert model.training


def test_valid_edge_values_are_accepted() -> None:
    report = te.check(_model(), torch.randn(8, 4), atol=1e-3, rtol=0, gap_threshold=None, train_checks=False)
    assert report.ok
