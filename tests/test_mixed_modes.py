"""``te.describe`` and ``te.guard`` share one rule of explained eval and one grouping.

The truth: on the same model, describe's TE202 anchors equal the guard's TE106 anchors at an
optimizer step, and a frozen part (eval + no trainable parameters) is silent in both.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import traineval as te


def _anchors_describe(model: nn.Module) -> set[str]:
    return {d.where for d in te.describe(model).findings if d.code == "TE202"}


def _anchors_guard(model: nn.Module) -> set[str]:
    found: list = []
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with te.guard(model, opt, on=found.append, rules=["TE106"]):
            opt.step()
    return {d.where for d in found if d.code == "TE106"}


def test_a_linear_probe_over_a_frozen_backbone_is_silent_in_both() -> None:
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.2))
    model = nn.Sequential(backbone, nn.Flatten(), nn.Linear(4, 2)).train()
    backbone.eval().requires_grad_(False)
    assert _anchors_describe(model) == set()
    assert _anchors_guard(model) == set()
    backbone.requires_grad_(True)  # eval but trainable: the bug, reported once at the backbone
    assert _anchors_describe(model) == {"0"} == _anchors_guard(model)


def _block(draw: st.DrawFn, depth: int) -> nn.Module:
    kind = draw(st.sampled_from(["bn", "drop", "lin", "seq"] if depth < 3 else ["bn", "drop", "lin"]))
    if kind == "bn":
        m: nn.Module = nn.BatchNorm1d(2)
    elif kind == "drop":
        m = nn.Dropout(0.1)
    elif kind == "lin":
        m = nn.Linear(2, 2)
    else:
        m = nn.Sequential(*[_block(draw, depth + 1) for _ in range(draw(st.integers(1, 3)))])
    if draw(st.booleans()):
        m.eval()
    if draw(st.integers(0, 3)) == 0:
        m.requires_grad_(False)
    return m


@st.composite
def models(draw: st.DrawFn) -> nn.Module:
    model = nn.Sequential(*[_block(draw, 1) for _ in range(draw(st.integers(1, 4)))])
    model.training = True
    model.append(nn.Linear(2, 2))  # something trainable, so a step trains the model
    return model


@settings(max_examples=60, deadline=None)
@given(models())
def test_describe_and_guard_agree_on_every_mixed_tree(model: nn.Module) -> None:
    assert _anchors_describe(model) == _anchors_guard(model)
