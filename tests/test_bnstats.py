"""te.recalibrate_batchnorm against independent float64 truth, hand-computed values and PyTorch's
own train-mode BatchNorm; modes, failures and bad input."""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import traineval as te
import traineval.examples as ex

REL = 1e-6


# ------------------------------------------------------------------------------- helpers
def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(before: dict[str, torch.Tensor], model: nn.Module) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"{k} changed"


def rel_err(got: torch.Tensor, truth: torch.Tensor) -> float:
    return ((got.double() - truth) / truth.abs()).abs().max().item()


def record_inputs(model: nn.Module) -> tuple[dict[str, list[torch.Tensor]], list]:
    """Independently keep every input each norm layer receives (a hook registered first)."""
    seen: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, m in model.named_modules():
        if te.is_norm_with_running_stats(m):
            def hook(mod, args, name=name):
                seen.setdefault(name, []).append(args[0].detach().double().clone())
            handles.append(m.register_forward_pre_hook(hook))
    return seen, handles


def truth_of(inputs: list[torch.Tensor], instance_unbatched: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance per channel of all values, by concatenation."""
    flat = torch.cat([x.movedim(0 if instance_unbatched else 1, 0).reshape(x.shape[0 if instance_unbatched else 1], -1)
                      for x in inputs], dim=1)
    return flat.mean(dim=1), flat.var(dim=1, unbiased=True)


class Zoo(nn.Module):
    """Every running-statistics norm kind, a subclass with its own forward, a shared layer."""

    class LoggingBN(nn.BatchNorm1d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # custom forward: train-mode path
            self.calls = getattr(self, "calls", 0) + 1
            return super().forward(x)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.inorm = nn.InstanceNorm2d(4, track_running_stats=True, affine=True)
        self.conv3 = nn.Conv3d(4, 2, 1)
        self.bn3 = nn.BatchNorm3d(2)
        self.lazy = nn.LazyBatchNorm1d()
        self.sync = nn.SyncBatchNorm(2)
        self.custom = Zoo.LoggingBN(6)
        self.shared = nn.BatchNorm1d(6)
        self.fc = nn.Linear(2 * 16, 6)
        self.untracked = nn.BatchNorm1d(6, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.bn2(self.conv(x))))
        h = self.inorm(h)
        h3 = self.bn3(self.conv3(h.unsqueeze(2))).squeeze(2)          # (N, 2, 4, 4)
        seq = self.sync(self.lazy(h3.flatten(2)))                    # (N, 2, 16)
        z = self.fc(seq.flatten(1))
        z = self.shared(self.custom(z)) + self.shared(z * 2 + 1)     # shared layer, two calls
        return self.untracked(z)


def zoo() -> Zoo:
    torch.manual_seed(0)
    model = Zoo()
    with torch.no_grad():
        model(torch.randn(4, 3, 4, 4))  # initialise the lazy layer
    return model


def uneven_batches(shape_tail=(3, 4, 4), sizes=(5, 2, 9, 3), seed=1, scale=3.0, shift=5.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *shape_tail, generator=g) * scale + shift for n in sizes]


# ----------------------------------------------------------------------------- exactness
def test_every_norm_kind_matches_float64_truth_of_its_inputs():
    model = zoo()
    data = uneven_batches()
    seen, handles = record_inputs(model)
    report = te.recalibrate_batchnorm(model, data, progress=False)
    for h in handles:
        h.remove()
    names = {"bn2", "inorm", "bn3", "lazy", "sync", "custom", "shared"}
    assert {x.name for x in report.layers} == names
    assert "untracked" not in seen
    for name in names:
        layer = model.get_submodule(name)
        mean, var = truth_of(seen[name])
        assert rel_err(layer.running_mean, mean) <= REL, name
        assert rel_err(layer.running_var, var) <= REL, name
        entry = next(x for x in report.layers if x.name == name)
        assert entry.samples == sum(x.numel() for x in seen[name]) // layer.num_features
        assert entry.calls == len(seen[name]) == layer.num_batches_tracked.item()
    shared = next(x for x in report.layers if x.name == "shared")
    assert shared.calls == 2 * len(data)                                   # both calls pooled
    assert shared.samples == 2 * sum(x.shape[0] for x in data)


def test_hand_computed_pooled_variance_includes_spread_of_batch_means():
    bn = nn.BatchNorm1d(1)
    data = [torch.tensor([[0.0], [2.0]]), torch.tensor([[10.0], [12.0], [14.0]])]
    te.recalibrate_batchnorm(bn, data, progress=False)
    # all values 0 2 10 12 14: mean 7.6, unbiased variance 155.2 / 4
    assert bn.running_mean.item() == pytest.approx(7.6, rel=1e-7)
    assert bn.running_var.item() == pytest.approx(38.8, rel=1e-7)
    # torch.optim.swa_utils.update_bn gets another answer here (it averages batch variances)
    swa = nn.BatchNorm1d(1)
    torch.optim.swa_utils.update_bn(data, swa)
    assert abs(swa.running_var.item() - 38.8) > 1


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    channels=st.integers(1, 5),
    length=st.integers(1, 6),
    offset=st.sampled_from([0.0, 1.0, -300.0, 1e4]),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
    seed=st.integers(0, 2**16),
)
def test_any_batch_split_matches_concatenation(sizes, channels, length, offset, scale, seed):
    sizes = [n for n in sizes if n * length > 1] or [2]
    g = torch.Generator().manual_seed(seed)
    data = [torch.randn(n, channels, length, generator=g) * scale + offset for n in sizes]
    bn = nn.BatchNorm1d(channels)
    te.recalibrate_batchnorm(bn, data, progress=False)
    mean, var = truth_of([x.double() for x in data])
    assert rel_err(bn.running_mean, mean) <= REL
    assert rel_err(bn.running_var, var) <= REL


def test_pass_reproduces_pytorch_train_mode_inputs_downstream():
    """Upstream layers normalise with batch statistics exactly as torch's train mode does."""
    model = ex.small_resnet()
    data = uneven_batches(shape_tail=(3, 16, 16), sizes=(6, 3, 5))
    reference = copy.deepcopy(model)
    seen, handles = record_inputs(reference)
    reference.eval()
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()                                 # torch's own batch-statistics path
    with torch.no_grad():
        for x in data:
            reference(x)
    for h in handles:
        h.remove()
    te.recalibrate_batchnorm(model, data, progress=False)
    for name, inputs in seen.items():
        mean, var = truth_of(inputs)
        layer = model.get_submodule(name)
        std = var.sqrt()
        assert ((layer.running_mean.double() - mean).abs() / std).max() < 1e-5, name
        assert rel_err(layer.running_var, var) < 1e-5, name


def test_low_precision_model_accumulates_in_float64():
    bn = nn.BatchNorm1d(3).to(torch.float64)
    data = [torch.randn(n, 3, dtype=torch.float64) * 1e-4 + 1e4 for n in (7, 3, 11)]
    te.recalibrate_batchnorm(bn, data, progress=False)
    mean, var = truth_of(data)
    assert ((bn.running_mean - mean) / mean).abs().max() < 1e-12
    assert ((bn.running_var - var) / var).abs().max() < 1e-6
    half = nn.BatchNorm1d(3).to(torch.bfloat16)
    data16 = [x.to(torch.bfloat16) for x in data[:2]] + [torch.randn(5, 3).to(torch.bfloat16)]
    te.recalibrate_batchnorm(half, data16, progress=False)
    mean, var = truth_of([x.double() for x in data16])
    assert rel_err(half.running_mean.float(), mean) < 1e-2          # bfloat16 buffer rounding only
    assert rel_err(half.running_var.float(), var) < 1e-2


# -------------------------------------------------------------------------------- modes
class Spy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flags: list[bool] = []
        self.grad: list[bool] = []
        self.allowed: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.flags.append(self.training)
        self.grad.append(torch.is_grad_enabled())
        self.allowed.append(te.is_allowed("TE101"))
        return x


def spy_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), Spy(), nn.BatchNorm1d(8), nn.RReLU(), nn.BatchNorm1d(8))


def test_dropout_off_keeps_everything_but_norms_in_eval_and_restores_modes():
    model = spy_model()
    model[4].eval()                                   # a mixed state that must come back exactly
    before = te.modes(model)
    data = [torch.randn(6, 4) for _ in range(3)]
    te.recalibrate_batchnorm(model, data, progress=False)
    assert model[2].flags == [False] * 3 and model[2].grad == [False] * 3 and model[2].allowed == [True] * 3
    assert te.modes(model) == before
    # deterministic: the statistics equal those of a model whose dropout is off
    again = spy_model()
    te.recalibrate_batchnorm(again, data, progress=False)
    assert torch.equal(again[5].running_var, model[5].running_var)
    momentum = model[3].momentum
    assert momentum == 0.1


def test_dropout_on_runs_the_rest_in_train_mode():
    model = spy_model()
    off = spy_model()
    data = [torch.randn(16, 4) for _ in range(3)]
    te.recalibrate_batchnorm(model, data, dropout="on", progress=False)
    te.recalibrate_batchnorm(off, data, progress=False)
    assert model[2].flags == [True] * 3
    assert not torch.allclose(model[5].running_var, off[5].running_var)   # dropout's variance shift


def test_frozen_layers_are_left_alone():
    model = spy_model()
    policy = te.freeze_batchnorm(model)
    before = state(model)
    report = te.recalibrate_batchnorm(model, [torch.randn(5, 4)], progress=False)
    assert report.frozen == ["3", "5"] and report.layers == []
    assert_same_state(before, model)
    policy.undo()

    class KeepsFirstFrozen(nn.Sequential):
        def train(self, mode: bool = True):
            super().train(mode)
            self[3].eval()
            return self

    torch.manual_seed(0)
    model = KeepsFirstFrozen(*spy_model())
    report = te.recalibrate_batchnorm(model, [torch.randn(5, 4)], progress=False)
    assert report.frozen == ["3"] and [x.name for x in report.layers] == ["5"]


# ----------------------------------------------------------------------------- layerwise
def test_layerwise_gathers_each_layer_behind_new_upstream_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4), nn.BatchNorm1d(4))
    data = uneven_batches(shape_tail=(3,), sizes=(4, 7, 3), shift=2.0)
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        first = torch.cat([reference[0](x).double() for x in data])
        reference[1].running_mean.copy_(first.mean(0))
        reference[1].running_var.copy_(first.var(0))
        second = torch.cat([reference[:4](x).double() for x in data])   # inference-time inputs
    report = te.recalibrate_batchnorm(model, data, order="layerwise", progress=False)
    assert rel_err(model[1].running_mean, first.mean(0)) <= REL
    assert rel_err(model[4].running_mean, second.mean(0)) <= 1e-5
    assert rel_err(model[4].running_var, second.var(0)) <= 1e-5
    assert report.rounds == 2
    # analysis + a stopped pass for layer 1 + a stopped pass for layer 4: under 3 full passes
    assert len(data) < report.forward_equivalents < 1 + 2 * len(data)


def test_layerwise_groups_parallel_branches_and_refuses_self_dependence():
    model = ex.small_resnet()
    data = [torch.randn(4, 3, 16, 16) for _ in range(2)]
    report = te.recalibrate_batchnorm(model, data, order="layerwise", progress=False)
    assert len(report.layers) == 9 and report.rounds == 7   # shortcuts share their block's level
    single = te.recalibrate_batchnorm(ex.small_resnet(), data, progress=False)
    assert single.forward_equivalents == 2.0 and single.rounds == 1

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.bn = nn.Linear(3, 3), nn.BatchNorm1d(3)

        def forward(self, x):
            return self.bn(self.lin(self.bn(x)))

    model = Recurrent()
    before = state(model)
    with pytest.raises(ValueError, match=r"layer `bn` depends on its own output.*single-pass"):
        te.recalibrate_batchnorm(model, [torch.randn(4, 3)], order="layerwise", progress=False)
    assert_same_state(before, model)
    report = te.recalibrate_batchnorm(model, [torch.randn(4, 3)], progress=False)
    assert report.layers[0].calls == 2


def test_layerwise_needs_reiterable_data():
    with pytest.raises(ValueError, match="re-iterable"):
        te.recalibrate_batchnorm(nn.BatchNorm1d(2), iter([torch.randn(3, 2)]), order="layerwise", progress=False)


# --------------------------------------------------------------------- data and forward
def test_batch_forms_forward_and_num_batches():
    class Kw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x, scale=1.0):
            return self.bn(x * scale)

    xs = [torch.randn(4, 2) * 2 + 1 for _ in range(4)]
    results = []
    for data, fwd in [
        (xs, None),
        ([(x, torch.zeros(4)) for x in xs], None),
        ([[x, "label"] for x in xs], None),
        ([{"x": x, "scale": 1.0} for x in xs], None),
        ([{"image": x} for x in xs], lambda m, b: m(b["image"])),
    ]:
        model = Kw()
        te.recalibrate_batchnorm(model, data, forward=fwd, progress=False)
        results.append(model.bn.running_var.clone())
    assert all(torch.equal(results[0], r) for r in results)

    consumed = []

    def gen():
        for i, x in enumerate(xs):
            consumed.append(i)
            yield x

    model = Kw()
    report = te.recalibrate_batchnorm(model, gen(), num_batches=2, progress=False)
    assert consumed == [0, 1] and report.batches == 2
    mean, var = truth_of([x.double() for x in xs[:2]])
    assert rel_err(model.bn.running_mean, mean) <= REL and rel_err(model.bn.running_var, var) <= REL


def test_no_gradient_tracking_and_parameters_untouched():
    model = ex.mlp()
    params = {k: v.clone() for k, v in model.named_parameters()}
    te.recalibrate_batchnorm(model, [torch.randn(8, 20) for _ in range(2)], progress=False)
    for k, v in model.named_parameters():
        assert v.grad is None and torch.equal(v, params[k])


def test_layer_not_reached_keeps_its_statistics():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.BatchNorm1d(2), nn.BatchNorm1d(2)

        def forward(self, x):
            return self.used(x)

    model = Branchy()
    model.unused.running_mean.fill_(3.0)
    model.unused.num_batches_tracked.fill_(17)
    before = {k: v.clone() for k, v in model.unused.state_dict().items()}
    report = te.recalibrate_batchnorm(model, [torch.randn(3, 2)], progress=False)
    assert report.not_reached == ["unused"] and [x.name for x in report.layers] == ["used"]
    for k, v in model.unused.state_dict().items():
        assert torch.equal(v, before[k])
    assert "not reached" in str(report)


def test_num_batches_tracked_and_momentum_none():
    bn = nn.BatchNorm1d(2, momentum=None)
    bn.num_batches_tracked.fill_(1000)
    te.recalibrate_batchnorm(bn, [torch.randn(3, 2), torch.randn(5, 2)], progress=False)
    assert bn.num_batches_tracked.item() == 2 and bn.momentum is None


# ------------------------------------------------------------------------- transactions
def failing(data, at):
    for i, x in enumerate(data):
        if i == at:
            raise RuntimeError("bad batch")
        yield x


@pytest.mark.parametrize("order", ["single-pass", "layerwise"])
@pytest.mark.parametrize("exc", [RuntimeError("bad batch"), KeyboardInterrupt(), torch.OutOfMemoryError("oom")])
def test_failure_midway_restores_everything_bit_for_bit(order, exc):
    model = ex.small_resnet()
    model.layer2.eval()                           # mixed modes
    model.layer1.bn1.momentum = 0.37
    with torch.no_grad():
        model.layer3.bn2.running_var.uniform_(0.5, 2.0)
    before, modes = state(model), te.modes(model)
    data = [torch.randn(3, 3, 8, 8) for _ in range(4)]
    calls = []

    def forward(m, batch):
        calls.append(1)
        if len(calls) == 6:            # single-pass: never; layerwise: in a later round
            raise exc
        if order == "single-pass" and len(calls) == 3:
            raise exc
        return m(batch)

    with pytest.raises(type(exc)):
        te.recalibrate_batchnorm(model, data, forward=forward, order=order, progress=False)
    assert_same_state(before, model)
    assert te.modes(model) == modes and model.layer1.bn1.momentum == 0.37


def test_batch_of_one_value_per_channel_is_refused_naming_the_layer():
    model = ex.mlp()
    before = state(model)
    data = [torch.randn(4, 20), torch.randn(1, 20)]
    with pytest.raises(ValueError, match=r"layer `1` \(BatchNorm1d\) received one value per channel"):
        te.recalibrate_batchnorm(model, data, progress=False)
    assert_same_state(before, model)


def test_empty_data_is_an_error_and_model_untouched():
    model = ex.mlp()
    before = state(model)
    with pytest.raises(ValueError, match="data yielded no batches; the model was not changed"):
        te.recalibrate_batchnorm(model, [], progress=False)
    assert_same_state(before, model)


# ------------------------------------------------------------------------------ bad input
def test_bad_arguments_have_clear_messages():
    with pytest.raises(TypeError, match="expected an nn.Module for model, got list"):
        te.recalibrate_batchnorm([nn.BatchNorm1d(2)], [])
    bn = nn.BatchNorm1d(2)
    with pytest.raises(ValueError, match="dropout must be 'off' or 'on'"):
        te.recalibrate_batchnorm(bn, [], dropout=True)
    with pytest.raises(ValueError, match="order must be"):
        te.recalibrate_batchnorm(bn, [], order="two-pass")
    with pytest.raises(ValueError, match="num_batches must be a positive int"):
        te.recalibrate_batchnorm(bn, [], num_batches=0)
    with pytest.raises(TypeError, match=r"wrap a single batch in a list"):
        te.recalibrate_batchnorm(bn, torch.randn(3, 2))
    with pytest.raises(TypeError, match="forward must be a callable"):
        te.recalibrate_batchnorm(bn, [], forward="model")
    with pytest.raises(TypeError, match="cannot feed a batch of type int"):
        te.recalibrate_batchnorm(bn, [3], progress=False)
    with pytest.raises(ValueError, match=r"received input of shape \(3, 5\), expected 2 channels"):
        te.recalibrate_batchnorm(bn, [torch.randn(3, 5)], progress=False)
    with pytest.raises(ValueError, match="uninitialised lazy"):
        te.recalibrate_batchnorm(nn.LazyBatchNorm1d(), [torch.randn(3, 2)], progress=False)


def test_no_norm_layer_warns_and_does_not_touch_data():
    consumed = []

    def gen():
        consumed.append(1)
        yield torch.randn(2, 2)

    with pytest.warns(te.TraineValWarning, match="no normalisation layer"):
        report = te.recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.Dropout()), gen())
    assert len(report) == 0 and consumed == []


def test_unrelated_models_stay_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        te.recalibrate_batchnorm(ex.mlp(), [torch.randn(4, 20)], progress=False)


# -------------------------------------------------------------------------------- report
def test_report_values_text_and_json():
    bn = nn.BatchNorm1d(2)                                  # old statistics: mean 0, var 1
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])   # means 3, 12; variances 4, 12
    report = te.recalibrate_batchnorm(bn, [x], progress=False)
    (layer,) = report.layers
    assert layer.mean_shift == pytest.approx(12 / (1 + bn.eps) ** 0.5, rel=1e-6)
    assert (layer.var_ratio_min, layer.var_ratio_max) == (pytest.approx(4.0), pytest.approx(12.0))
    assert layer.samples == 3 and layer.calls == 1
    text = str(report)
    assert "recalibrated 1 normalisation layer over 1 batch" in text and "<model>" in text
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["layers"][0]["samples"] == 3 and payload["order"] == "single-pass"


def test_progress_bar_only_on_a_terminal():
    code = (
        "import torch, traineval as te, torch.nn as nn\n"
        "te.recalibrate_batchnorm(nn.BatchNorm1d(2), [torch.randn(3, 2) for _ in range(4)])\n"
    )
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and plain.stderr == ""
    pty = pytest.importorskip("pty")
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    main, worker = pty.openpty()
    fcntl.ioctl(worker, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=worker, stdout=subprocess.DEVNULL)
    os.close(worker)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=120) == 0
    assert "recalibrating BatchNorm" in out.decode(errors="replace")


@pytest.mark.parametrize("ratio", [1.0, 30.0, 99.0, 101.0, 1e4])
def test_fast_statistics_path_stays_exact_near_its_switch(ratio):
    """BatchNorm's fused statistics kernel is used while |mean| <= 100 std; var_mean beyond."""
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(n, 4, 6, 6, generator=g) + ratio for n in (5, 9, 2)]
    bn = nn.BatchNorm2d(4)
    te.recalibrate_batchnorm(bn, batches, progress=False)
    x = torch.cat(batches).double()
    assert rel_err(bn.running_mean, x.mean((0, 2, 3))) <= REL
    assert rel_err(bn.running_var, x.var((0, 2, 3), unbiased=True)) <= REL
