"""te.freeze_batchnorm / te.mc_dropout / te.predict_mc."""

from __future__ import annotations

import contextlib
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


# ------------------------------------------------------------------ faults, root BatchNorm
class _Fault(BaseException):
    pass


@pytest.mark.parametrize("make", [te.freeze_batchnorm, te.mc_dropout])
@pytest.mark.parametrize("after", [False, True])
def test_a_fault_at_any_pin_leaves_no_orphan_pin(monkeypatch, make, after):
    from traineval.core import pins

    real = pins.add_pin
    model = small_resnet()
    total = len([m for m in model.modules() if te.classify(m) is not None])
    for k in range(total + 1):
        model.train()
        model.layer1.eval() if hasattr(model, "layer1") else None
        before = te.modes(model)
        calls = []

        def faulty(module, policy_id, flag, name, k=k, calls=calls):
            calls.append(1)
            if len(calls) == k + 1 and not after:
                raise _Fault
            real(module, policy_id, flag, name)
            if len(calls) == k + 1 and after:
                raise _Fault

        monkeypatch.setattr(pins, "add_pin", faulty)
        with contextlib.suppress(_Fault):
            make(model).undo(restore_modes=True)
        monkeypatch.setattr(pins, "add_pin", real)
        assert not [n for n, m in model.named_modules() if "train" in m.__dict__], f"orphan pin at step {k}"
        assert te.modes(model) == before, f"modes changed by the fault at step {k}"
        model.eval()
        assert all(not m.training for m in model.modules())  # nothing pinned to training either


def test_root_batchnorm_policy_undo_restores_the_mode_last_asked():
    bn = nn.BatchNorm1d(3)
    policy = te.freeze_batchnorm(bn)
    bn.train()
    assert not bn.training
    policy.undo()
    assert bn.training and "train" not in bn.__dict__
    bn.eval()
    policy = te.freeze_batchnorm(bn)
    policy.undo()
    assert not bn.training


# -------------------------------------------------------- mc_dropout on custom modules (probe)
class _FunctionalAttention(nn.Module):  # an HF-style layer: its own flag gates functional dropout
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        return torch.nn.functional.dropout(self.proj(x), 0.4, training=self.training)


class _HandBatchNorm(nn.Module):  # its own flag gates batch statistics and a buffer update
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.mean.mul_(0.9).add_(0.1 * x.mean(0))
            return x - x.mean(0)
        return x - self.mean


def test_probe_makes_functional_dropout_live_and_keeps_hand_written_statistics_frozen():
    model = nn.Sequential(_FunctionalAttention(), _HandBatchNorm(), nn.BatchNorm1d(4))
    model(torch.randn(8, 4))
    x = torch.randn(5, 4)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    rng = torch.get_rng_state()
    with te.mc_dropout(model, example=x):
        assert torch.equal(torch.get_rng_state(), rng)  # the probe leaves the global RNG alone
        assert [model[i].training for i in range(3)] == [True, False, False]
        model.train()
        assert [model[i].training for i in range(3)] == [True, False, False]
        with torch.no_grad():
            outs = torch.stack([model(x) for _ in range(50)])
    assert outs.var(0).sum() > 0
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    # the same with the container listed: BatchNorm under it stays frozen
    with te.mc_dropout(model, modules=[model], example=x):
        assert [model[i].training for i in range(3)] == [True, False, False]


def test_probe_failure_restores_buffers_rng_and_modes():
    model = nn.Sequential(_HandBatchNorm(), _FunctionalAttention())
    model.train()
    x = torch.randn(3, 7)  # wrong width: the probe forward raises
    before, rng = te.modes(model), torch.get_rng_state()
    with pytest.raises(RuntimeError):
        te.mc_dropout(model, example=x)
    assert te.modes(model) == before and torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(model[0].mean, torch.zeros(4))
    assert not [m for m in model.modules() if "train" in m.__dict__]


# ------------------------------------------------------------------- predict_mc: layouts & co.
@pytest.mark.parametrize("batch_first", [False, True])
def test_predict_mc_sequence_layers_repeat_along_their_batch_dim(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, dropout=0.3, batch_first=batch_first)
    q = torch.randn(4, 3, 8)  # (L, N, E) or (N, L, E)
    got = te.predict_mc(mha, (q, q, q), samples=400)
    mha.train()
    with torch.no_grad():
        outs = torch.stack([mha(q, q, q)[0] for _ in range(400)])
    ratio = float(got.variance.mean() / outs.var(0, correction=0).mean())
    assert got.mean.shape == q.shape and 0.8 < ratio < 1.25, ratio
    assert (got.mean - outs.mean(0)).abs().max() < 0.1


def test_predict_mc_lstm_seq_first_mean_at_zero_dropout_is_the_eval_output():
    lstm = nn.LSTM(3, 5, num_layers=2, dropout=1e-6)
    x = torch.randn(7, 4, 3)  # sequence-first
    got = te.predict_mc(lstm, x, samples=3)
    with torch.no_grad():
        expected = lstm.eval()(x)[0]
    assert torch.allclose(got.mean, expected, atol=1e-5)


def test_predict_mc_max_batch_smaller_than_batch_splits_rows():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    got = te.predict_mc(model, torch.randn(10, 4), samples=3, max_batch=4, return_samples=True)
    assert max(calls) <= 4 and sum(calls) == 30
    assert got.samples is not None and got.samples.shape == (3, 10, 4)
    assert torch.allclose(got.variance, got.samples.var(0, correction=0))


def test_predict_mc_dict_input_and_classification_quantities():
    class Clf(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.drop = nn.Linear(4, 3), nn.Dropout(0.5)

        def forward(self, features, scale=1.0):
            return {"logits": self.lin(self.drop(features)) * scale}

    model = Clf()
    x = {"features": torch.randn(6, 4), "scale": 2.0}
    got = te.predict_mc(model, x, samples=40, task="classification", return_samples=True)
    probs = got.samples.double()  # independent float64 recomputation of the Baal quantities
    mean = probs.mean(0)
    entropy = -(mean * mean.log()).sum(-1)
    mutual = entropy - (-(probs * probs.log()).sum(-1)).mean(0)
    assert torch.allclose(got.mean.double(), mean, atol=1e-6)
    assert torch.allclose(got.entropy.double(), entropy, atol=1e-5)
    assert torch.allclose(got.mutual_information.double(), mutual, atol=1e-5)
    assert (got.mutual_information > -1e-6).all() and torch.allclose(probs.sum(-1), torch.ones(40, 6).double())
    with pytest.raises(ValueError, match="task must be"):
        te.predict_mc(model, x, task="probabilities")  # type: ignore[arg-type]
