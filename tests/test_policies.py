"""te.freeze_batchnorm / te.mc_dropout / te.predict_mc."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
import torch.nn as nn

import traineval as te
from traineval.examples import mlp, small_resnet


def bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


# ----------------------------------------------------------------------- freeze_batchnorm
def test_frozen_bn_survives_train_and_stops_updating_statistics():
    model = small_resnet()
    policy = te.freeze_batchnorm(model)
    model.train()
    assert all(not bn.training for bn in bn_layers(model))
    assert model.dropout.training  # everything else trains
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in stats.items())
    policy.undo()
    assert all(bn.training for bn in bn_layers(model))  # released: follow the parent (training)


def test_frozen_bn_normalises_like_pytorch_eval_bn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model(torch.randn(8, 3, 6, 6))  # non-trivial running stats
    ref = copy.deepcopy(model).eval()
    te.freeze_batchnorm(model)
    model.train()
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(model(x), ref(x))


def test_state_dict_types_and_keys_unchanged():
    model = small_resnet()
    before_sd = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    with te.freeze_batchnorm(model, freeze_affine=True):
        sd = model.state_dict()
        assert list(sd) == list(before_sd)
        assert all(torch.equal(sd[k], v) for k, v in before_sd.items())
        assert [type(m) for m in model.modules()] == types


def test_freeze_affine_and_undo_restore_requires_grad():
    model = small_resnet()
    model.stem[1].bias.requires_grad_(False)  # a user choice that undo must keep
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    policy = te.freeze_batchnorm(model, freeze_affine=True)
    assert not any(bn.weight.requires_grad or bn.bias.requires_grad for bn in bn_layers(model))
    assert model.fc.weight.requires_grad
    policy.undo()
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before
    policy.undo()  # idempotent


def test_selected_modules_by_name_and_object():
    model = small_resnet()
    policy = te.freeze_batchnorm(model, ["layer1", model.stem[1]])
    assert sorted(policy.names) == ["layer1.bn1", "layer1.bn2", "stem.1"]
    model.train()
    assert not model.layer1.bn1.training and model.layer2.bn1.training


def test_bad_module_selection_changes_nothing():
    model = small_resnet()
    with pytest.raises(ValueError, match="no submodule named 'nope'"):
        te.freeze_batchnorm(model, ["layer1", "nope"])
    with pytest.raises(ValueError, match="not a submodule"):
        te.freeze_batchnorm(model, [nn.BatchNorm2d(3)])
    with pytest.raises(TypeError, match="names or nn.Module"):
        te.freeze_batchnorm(model, [3])
    assert all(bn.training for bn in bn_layers(model))
    assert "train" not in model.layer1.bn1.__dict__


def test_no_batchnorm_warns_and_returns_empty_policy():
    with pytest.warns(te.TraineValWarning, match="nothing frozen"):
        policy = te.freeze_batchnorm(nn.Sequential(nn.Linear(2, 2)))
    assert policy.names == []


def test_context_manager_restores_modes_as_before():
    model = small_resnet()
    model.layer2.eval()
    before = te.modes(model)
    with te.freeze_batchnorm(model):
        model.train()
    assert te.modes(model) == before


def test_policy_survives_deepcopy_and_pickle():
    model = small_resnet()
    te.freeze_batchnorm(model)
    clone = copy.deepcopy(model)
    clone.train()
    assert all(not bn.training for bn in bn_layers(clone))
    assert clone.stem[1].train.module is clone.stem[1]  # re-pointed at the copy
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    loaded.train()
    assert all(not bn.training for bn in bn_layers(loaded))
    assert pickle.loads(pickle.dumps(model)).train().layer1.bn1.training is False


def test_policy_survives_evaluating_block_created_inside():
    model = small_resnet()
    with te.evaluating(model):
        policy = te.freeze_batchnorm(model)
    assert model.training and not model.layer1.bn1.training  # restore respected the pin
    policy.undo()


def test_undo_restores_mode_following_parent_in_eval():
    model = small_resnet()
    policy = te.freeze_batchnorm(model)
    model.eval()
    policy.undo()
    assert not model.layer1.bn1.training


# ----------------------------------------------------------------------------- mc_dropout
def test_mc_dropout_keeps_dropout_live_and_bn_in_eval():
    model = mlp()
    with te.mc_dropout(model):
        for call in (model.train, model.eval):
            call()
            assert model[3].training and model[6].training
            assert not model[1].training
        x = torch.randn(16, 20)
        assert not torch.equal(model(x), model(x))  # dropout live
    assert all(m.training for m in model.modules())


def test_mc_dropout_composes_with_freeze_batchnorm_and_conflicts_fail_clearly():
    model = mlp()
    frozen = te.freeze_batchnorm(model)
    mc = te.mc_dropout(model)
    assert model[1].__dict__["train"].pins and len(model[1].__dict__["train"].pins) == 2
    mc.undo()
    model.train()
    assert not model[1].training  # still frozen by the first policy
    frozen.undo()

    from traineval.core import pins

    pins.add_pin(model[3], 999, False, "custom_policy")
    before = te.modes(model)
    with pytest.raises(ValueError, match="already pinned to eval mode by custom_policy"):
        te.mc_dropout(model)
    assert te.modes(model) == before
    pins.remove_pin(model[3], 999)


def test_mc_dropout_attention_and_recurrent_dropout_included():
    model = nn.ModuleDict({"mha": nn.MultiheadAttention(8, 2, dropout=0.1), "rnn": nn.LSTM(8, 8, 2, dropout=0.1),
                           "bn": nn.BatchNorm1d(8)})
    with te.mc_dropout(model):
        assert model["mha"].training and model["rnn"].training and not model["bn"].training


def test_mc_dropout_without_dropout_warns():
    with pytest.warns(te.TraineValWarning, match="no active dropout"), te.mc_dropout(nn.Linear(2, 2)):
        pass


# ------------------------------------------------------------------------------ predict_mc
def test_predict_mc_equals_explicit_batched_computation():
    model = mlp()
    model(torch.randn(32, 20))  # BN stats
    x = torch.randn(5, 20)
    torch.manual_seed(7)
    mean, var = te.predict_mc(model, x, samples=30)
    torch.manual_seed(7)
    ref_model = copy.deepcopy(model).eval()
    for i in (3, 6):
        ref_model[i].train()
    with torch.no_grad():
        out = ref_model(x.repeat(30, 1)).reshape(30, 5, -1)
    assert torch.allclose(mean, out.mean(0)) and torch.allclose(var, out.var(0, unbiased=False))
    assert all(m.training for m in model.modules())


def test_predict_mc_moments_match_theory_for_linear_dropout():
    # y = w . dropout(x): E[y] = w.x, Var[y] = p/(1-p) * sum (w_i x_i)^2
    torch.manual_seed(0)
    p = 0.3
    lin = nn.Linear(6, 1, bias=False)
    model = nn.Sequential(nn.Dropout(p), lin)
    x = torch.randn(3, 6)
    mean, var = te.predict_mc(model, x, samples=20000)
    w = lin.weight.detach()[0]
    expected_mean = (x * w).sum(1, keepdim=True)
    expected_var = (p / (1 - p)) * ((x * w) ** 2).sum(1, keepdim=True)
    assert torch.allclose(mean, expected_mean, atol=0.05)
    assert torch.allclose(var, expected_var, rtol=0.1)


def test_predict_mc_chunks_when_capped():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    mean, var = te.predict_mc(model, torch.randn(3, 4), samples=10, max_batch=12)
    assert calls == [12, 12, 6]
    assert mean.shape == var.shape == (3, 4)


def test_predict_mc_bad_input():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    with pytest.raises(TypeError, match="expected a tensor"):
        te.predict_mc(model, [1, 2])
    with pytest.raises(ValueError, match="positive int"):
        te.predict_mc(model, torch.ones(1, 4), samples=0)


def test_predict_mc_restores_modes_when_forward_fails():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    model[1].eval()
    before = te.modes(model)
    with pytest.raises(RuntimeError):
        te.predict_mc(model, torch.ones(2, 5))
    assert te.modes(model) == before
    assert "train" not in model[1].__dict__
