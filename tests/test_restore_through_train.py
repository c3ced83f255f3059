"""Leaving a traineval context restores modes through ``train()``, so overrides run.

The truth each test compares against is the same loop written with plain ``model.eval()`` /
``model.train()`` calls, on an identical copy of the model.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import traineval as te


class CachedBias(nn.Module):
    """A LeViT-style layer: eval forwards cache a parameter-derived tensor, train() clears it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.bias = nn.Parameter(torch.zeros(4))
        self.cache: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> CachedBias:
        super().train(mode)
        if mode and self.cache:
            self.cache = {}
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.lin(x) + self.bias
        if "b" not in self.cache:
            self.cache["b"] = self.bias.detach().clone()
        return self.lin(x) + self.cache["b"]


class FrozenStem(nn.Module):
    """A detectron2-style backbone: its train() keeps the frozen stem in eval."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.BatchNorm1d(4)
        self.head = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))

    def train(self, mode: bool = True) -> FrozenStem:
        super().train(mode)
        self.stem.eval()
        return self


def _loop(model: nn.Module, scoped: bool, epochs: int = 3) -> list[torch.Tensor]:
    """Train a little, validate each epoch; return the validation outputs."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = torch.randn(8, 4)
    outs = []
    model.train()
    for _ in range(epochs):
        for _ in range(2):
            opt.zero_grad()
            model(data).pow(2).mean().backward()
            opt.step()
        if scoped:
            with te.evaluating(model), torch.no_grad():
                outs.append(model(data))
        else:
            model.eval()
            with torch.no_grad():
                outs.append(model(data))
            model.train()
    return outs


@pytest.mark.parametrize("context", ["evaluating", "inference"])
def test_scoped_eval_matches_the_plain_loop_bit_for_bit(context: str) -> None:
    plain, scoped = CachedBias(), CachedBias()
    scoped.load_state_dict(plain.state_dict())
    want = _loop(plain, scoped=False)
    got = []
    torch.manual_seed(0)
    opt = torch.optim.SGD(scoped.parameters(), lr=0.5)
    data = torch.randn(8, 4)
    for _ in range(3):
        for _ in range(2):
            opt.zero_grad()
            scoped(data).pow(2).mean().backward()
            opt.step()
        with getattr(te, context)(scoped), torch.no_grad():
            got.append(scoped(data).clone())
    for w, g in zip(want, got, strict=True):
        assert torch.equal(w, g)


def test_hf_levit_logits_match_the_plain_loop_over_three_epochs() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LevitConfig(
        image_size=64, num_channels=3, kernel_size=3, stride=2, padding=1, patch_size=16,
        hidden_sizes=[16, 24, 32], num_attention_heads=[1, 2, 2], depths=[1, 1, 1],
        key_dim=[8, 8, 8], drop_path_rate=0, mlp_ratio=[2, 2, 2],
        attention_ratio=[2, 2, 2], num_labels=3,
    )
    torch.manual_seed(0)
    plain = transformers.LevitForImageClassification(cfg)
    scoped = copy.deepcopy(plain)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])

    def run(model: nn.Module, use_te: bool) -> list[torch.Tensor]:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        logits = []
        model.train()
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x).logits, y).backward()
            opt.step()
            if use_te:
                with te.evaluating(model), torch.no_grad():
                    logits.append(model(x).logits)
            else:
                model.eval()
                with torch.no_grad():
                    logits.append(model(x).logits)
                model.train()
        return logits

    for w, g in zip(run(plain, False), run(scoped, True), strict=True):
        assert torch.equal(w, g)


def test_overrides_that_keep_a_stem_frozen_are_respected() -> None:
    model = FrozenStem().train()
    assert not model.stem.training
    with te.evaluating(model):
        assert not any(m.training for m in model.modules())
    assert te.modes(model) == {"": True, "stem": False, "head": True, "head.0": True,
                               "head.1": True}
    model.eval()
    with te.training(model):
        assert not model.stem.training  # train() went through the override
        assert model.head[1].training
    assert not any(m.training for m in model.modules())


def test_set_modes_goes_through_train_and_still_reaches_mixed_states() -> None:
    calls: list[bool] = []

    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.1)

        def train(self, mode: bool = True) -> Spy:
            calls.append(mode)
            return super().train(mode)

    model = nn.Sequential(Spy(), nn.Dropout(0.2))
    snapshot = {"": True, "0": True, "0.drop": False, "1": True}
    model.eval()
    calls.clear()
    te.set_modes(model, snapshot)
    assert calls == [True]
    assert te.modes(model) == snapshot


def test_an_override_that_raises_still_leaves_every_flag_restored() -> None:
    class Boom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.1)
            self.armed = False

        def train(self, mode: bool = True) -> Boom:
            if self.armed:
                raise KeyboardInterrupt
            return super().train(mode)

    model = nn.Sequential(Boom(), nn.Dropout(0.2)).train()
    before = te.modes(model)
    with pytest.raises(KeyboardInterrupt), te.evaluating(model):
        model[0].armed = True
    assert te.modes(model) == before


def test_pins_win_over_the_snapshot() -> None:
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.1)).train()
    with te.freeze_batchnorm(model):
        with te.evaluating(model):
            pass
        assert not model[0].training
        assert model[1].training
