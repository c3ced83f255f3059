"""The eval contract (``te.check`` / ``te.assert_eval_contract``) on the model zoo and on bad input.

Truth comes from the models' construction (each buggy zoo model breaks one rule, in a known
module), from PyTorch's own modules, and from statistics computed another way (NumPy, float64).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import traineval as te
from traineval.diagnostics import Severity

sys.path.insert(0, str(Path(__file__).parent))
import zoo


# ----------------------------------------------------------------------------- helpers
def _all_modules(model: nn.Module) -> list[nn.Module]:
    """The model's modules plus those held in plain lists/dicts of its modules (found by hand)."""
    out = list(model.modules())
    for m in list(out):
        for value in vars(m).values():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
            out += [v for v in items if isinstance(v, nn.Module)]
    return out


def _state(model: nn.Module) -> dict[str, Any]:
    tensors = {}
    for i, m in enumerate(_all_modules(model)):
        for name, t in [*m._parameters.items(), *m._buffers.items()]:
            if t is not None:
                tensors[f"{i}.{name}"] = (t, t.detach().clone())
    return {
        "tensors": tensors,
        "flags": [m.training for m in _all_modules(model)],
        "torch": torch.get_rng_state(),
        "random": random.getstate(),
        "numpy": np.random.get_state()[1].copy(),
    }


def _assert_same_state(model: nn.Module, before: dict[str, Any]) -> None:
    after = {f"{i}.{name}": t for i, m in enumerate(_all_modules(model))
             for name, t in [*m._parameters.items(), *m._buffers.items()] if t is not None}
    assert set(after) == set(before["tensors"])
    for key, (obj, value) in before["tensors"].items():
        assert after[key] is obj, f"{key} was replaced"
        assert torch.equal(obj.detach(), value), f"{key} changed"
    assert [m.training for m in _all_modules(model)] == before["flags"]
    assert torch.equal(torch.get_rng_state(), before["torch"])
    assert random.getstate() == before["random"]
    assert np.array_equal(np.random.get_state()[1], before["numpy"])


def _found(report: te.ContractReport, info: bool = False) -> set[tuple[str, str]]:
    return {(d.code, d.where) for d in report.diagnostics if (d.severity is Severity.INFO) == info}


class _Counter:
    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1


# --------------------------------------------------------------------------------- the zoo
def test_zoo_is_large_and_real() -> None:
    assert len(zoo.CLEAN) >= 6 and len(zoo.BUGGY) >= 12
    kinds = {type(m) for case in zoo.ALL if case.name != "cnn_bn_dropout" for m in case.build().modules()}
    assert {nn.TransformerEncoder, nn.LSTM, nn.MultiheadAttention, nn.GroupNorm, nn.InstanceNorm2d} <= kinds


@pytest.mark.parametrize("case", zoo.ALL, ids=lambda c: c.name)
def test_zoo(case: zoo.Case) -> None:
    """Each clean model passes; each buggy one gets exactly its codes at exactly its modules. The
    model, modes and RNG states are untouched, and the forwards stay within 2*samples + 6."""
    model, example = case.build(), case.example()
    before = _state(model)
    counter = _Counter(model)
    report = te.check(model, example, **case.kwargs)
    counter.handle.remove()
    _assert_same_state(model, before)
    assert _found(report) == case.expect, str(report)
    assert _found(report, info=True) == case.info, str(report)
    assert report.ok == (not any(code in ("TE210", "TE211", "TE212", "TE213", "TE214") for code, _ in case.expect))
    assert counter.calls == report.forwards <= 2 * len(report.samples) + 6


def test_clean_model_report_lists_every_check() -> None:
    report = te.check(zoo.cnn_bn_dropout(), zoo._images())
    assert report.ok and report.diagnostics == []
    assert set(report.checks) == {
        "deterministic in eval", "batch-independent in eval", "state unchanged by eval", "mode coverage",
        "no functional dropout in eval", "BatchNorm statistics gap", "training mode trains",
    }
    assert all(v == "passed" for v in report.checks.values()), report.checks
    assert len(report.stat_gaps) == 9 and not any(g.flagged for g in report.stat_gaps)
    assert report.samples == [0, 2, 5, 7] and report.batch_size == 8


def test_messages_name_the_cause() -> None:
    report = te.check(zoo.plain_list_bn(), zoo._vectors())
    by_code = {d.code: d for d in report.diagnostics}
    assert "plain list `2.bns`" in by_code["TE213"].message
    assert "BatchNorm1d" in by_code["TE211"].message and "training mode" in by_code["TE211"].message
    assert "`running_mean` changed" in by_code["TE212"].message
    report = te.check(zoo.mha_batch_first_mismatch(), torch.randn(6, 5, 4))
    assert "batch_first=False" in report.errors[0].message and "pass batch_first=True" in report.errors[0].message
    report = te.check(zoo.bn_without_running_stats(), zoo._images())
    assert "track_running_stats=False" in report.errors[0].message
    report = te.check(zoo.sdpa_dropout(), torch.randn(4, 5, 16))
    assert "F.scaled_dot_product_attention" in {d.code: d for d in report.errors}["TE214"].message
    report = te.check(zoo.noise_in_eval(), zoo._vectors())
    assert "torch.randn_like" in report.errors[0].message
    report = te.check(zoo.train_override(), zoo._vectors())
    assert "NoRecurseTrain) overrides train()" in report.warnings[0].message
    report = te.check(zoo.stale_bn(), zoo._images())
    assert "te.recalibrate_batchnorm" in report.warnings[0].fix


def test_functional_dropout_at_top_level_of_forward_function() -> None:
    """A functional dropout in the forward= function itself (outside every module)."""
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))

    def forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return m(F.dropout(x, 0.5))

    report = te.check(model, torch.randn(6, 8), forward=forward)
    assert ("TE214", "<forward>") in _found(report)
    assert ("TE210", "<forward>") in _found(report)


def test_random_from_python_and_numpy_is_caught_and_their_state_restored() -> None:
    class PyNoise(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * random.random() + float(np.random.rand())

    model, x = nn.Sequential(nn.Linear(4, 4), PyNoise()), torch.randn(4, 4)
    before = _state(model)
    report = te.check(model, x)
    _assert_same_state(model, before)
    assert ("TE210", "1") in _found(report)


def test_squeeze_of_the_batch_dimension_is_batch_dependence() -> None:
    class Squeeze(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).squeeze()  # (N, 5, 1) -> (N, 5), but (1, 5, 1) -> (5,)

    report = te.check(nn.Sequential(Squeeze()), torch.randn(4, 5, 8))
    assert _found(report) == {("TE211", "0")}
    assert "squeeze()" in report.errors[0].message


def test_single_sample_failure_is_reported_not_raised() -> None:
    report = te.check(zoo.plain_list_bn(), zoo._vectors())
    assert "alone raises ValueError" in {d.code: d for d in report.errors}["TE211"].message


# ---------------------------------------------------------------------------------- policies
def test_mc_dropout_is_explained_not_an_error() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    with te.mc_dropout(model):
        report = te.check(model, torch.randn(6, 8))
    assert report.ok, str(report)
    assert ("TE217", "1") in _found(report, info=True)
    assert not model[1].training or model.training  # the policy's undo restored the modes


# ------------------------------------------------------------------------ restoring on failure
class _Boom(nn.Module):
    """Raises on its ``after+1``-th eval call, or (``after=None``) on its first call in training mode."""

    def __init__(self, exc: BaseException, after: int | None) -> None:
        super().__init__()
        self.exc, self.after, self.calls = exc, after, 0
        self.bn = [nn.BatchNorm1d(4)]  # unregistered, in training: its statistics move before the raise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn[0](x)
        self.calls += 1  # an attribute the check must restore too
        if (self.after is None and self.training) or (self.after is not None and self.calls > self.after):
            raise self.exc
        return x


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()], ids=["RuntimeError", "KeyboardInterrupt"])
@pytest.mark.parametrize("after", [0, 1, None], ids=["first-forward", "second-forward", "in-training"])
def test_model_that_raises_is_restored(exc: BaseException, after: int | None) -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), _Boom(exc, after))
    model[1].eval()  # a mixed state must come back as it was
    x = torch.randn(6, 4)
    before = _state(model)
    if after is None and isinstance(exc, RuntimeError):  # a training forward that fails skips those checks
        report = te.check(model, x)
        assert report.checks["training mode trains"].startswith("skipped")
    else:
        with pytest.raises(type(exc)) as info:
            te.check(model, x)
        if isinstance(exc, RuntimeError):
            assert any("te.check" in note for note in getattr(info.value, "__notes__", []))
    assert model[2].calls == 0
    _assert_same_state(model, before)


def test_training_forward_that_raises_skips_the_training_checks() -> None:
    class NeedsLabelsInTraining(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                raise ValueError("targets should be passed in training mode")
            return self.fc(x)

    model, x = NeedsLabelsInTraining(), torch.randn(4, 4)
    before = _state(model)
    report = te.check(model, x)
    _assert_same_state(model, before)
    assert report.ok and report.checks["training mode trains"].startswith("skipped")
    assert any("targets should be passed" in n for n in report.notes)


def test_eval_forward_that_replaces_a_buffer_is_restored_with_the_original_object() -> None:
    class Replacer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("state", torch.zeros(3))
            self.steps = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.state = self.state + 1  # a new tensor object
            self.steps += 1
            return x

    model, x = Replacer(), torch.randn(4, 3)
    before = _state(model)
    report = te.check(model, x)
    _assert_same_state(model, before)
    assert model.steps == 0
    assert "replaced by a new tensor" in report.errors[0].message


# ------------------------------------------------------------------------------- bad input
def test_batch_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="needs at least 2"):
        te.check(nn.Linear(3, 3), torch.randn(1, 3))


def test_non_comparable_output_names_its_path() -> None:
    class Meta(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, Any]:
            return {"y": x, "extra": [x, object()]}

    with pytest.raises(TypeError, match=r"cannot compare output\['extra'\]\[1\]: it is a object"):
        te.check(Meta(), torch.randn(4, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"samples": 0}, ValueError, "samples must be a positive int"),
        ({"batch_dim": -1}, ValueError, "batch_dim must be a non-negative int"),
        ({"forward": 3}, TypeError, "forward must be a callable"),
        ({"batch_dim": 3}, TypeError, "no tensor with a dimension 3"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        te.check(nn.Linear(3, 3), torch.randn(4, 3), **kwargs)


def test_not_a_module() -> None:
    with pytest.raises(TypeError, match="expected an nn.Module for model, got list"):
        te.check([nn.Linear(2, 2)], torch.randn(4, 2))


def test_lazy_module_is_refused() -> None:
    with pytest.raises(ValueError, match="lazy modules"):
        te.check(nn.LazyLinear(3), torch.randn(4, 5))


# ----------------------------------------------------------------------- inputs and outputs
def test_tuple_example_with_lengths_and_sequence_first_batch() -> None:
    """(x, lengths): x is (seq, batch, feat) and lengths is 1-D; both are sliced per sample."""

    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 5, num_layers=2, dropout=0.2)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
            _, h = self.rnn(packed)
            return h[-1]

    x, lengths = torch.randn(7, 5, 3), torch.tensor([7, 3, 5, 2, 6])
    report = te.check(Packed(), (x, lengths), batch_dim=1)
    assert report.ok, str(report)
    assert report.checks["batch-independent in eval"] == "passed"


def test_assert_eval_contract_raises_readable_report() -> None:
    with pytest.raises(AssertionError, match=r"(?s)TE211.*`2` \(BatchCenter\)"):
        te.assert_eval_contract(zoo.batch_center(), zoo._vectors())
    with pytest.raises(AssertionError, match="TE215"):
        te.assert_eval_contract(zoo.stale_bn(), zoo._images(), fail_on="warning")
    assert te.assert_eval_contract(zoo.stale_bn(), zoo._images()).warnings
    with pytest.raises(ValueError, match="fail_on"):
        te.assert_eval_contract(zoo.stale_bn(), zoo._images(), fail_on="info")


def test_report_to_dict_is_json() -> None:
    import json

    data = json.loads(json.dumps(te.check(zoo.batch_center(), zoo._vectors()).to_dict()))
    assert data["ok"] is False
    assert [(d["code"], d["where"], d["doc"]) for d in data["diagnostics"]] == [
        ("TE211", "2", "docs/diagnostics/TE211.md")]


# ---------------------------------------------------------------------- statistics gap, by hand
def test_statistics_gap_matches_a_numpy_computation() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    bn.num_batches_tracked.fill_(100)
    x = torch.randn(6, 3, 5, 5, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    report = te.check(nn.Sequential(bn), x.float(), samples=2)
    (gap,) = report.stat_gaps
    arr = x.numpy().transpose(1, 0, 2, 3).reshape(3, -1)  # channel-major, every other axis pooled
    z = np.abs(arr.mean(1) - [0.5, -1.0, 2.0]) / np.sqrt(np.array([4.0, 0.25, 1.0]) + bn.eps)
    ratio = np.sqrt((arr.var(1) + bn.eps) / (np.array([4.0, 0.25, 1.0]) + bn.eps))
    assert gap.mean_shift == pytest.approx(np.sqrt(np.mean(z**2)), rel=1e-5)
    assert gap.scale_gap == pytest.approx(np.exp(np.sqrt(np.mean(np.log(ratio) ** 2))), rel=1e-5)
    assert gap.samples_per_channel == 150 and gap.flagged and not gap.never_updated


def test_statistics_gap_silent_when_statistics_match_and_skippable() -> None:
    bn = nn.BatchNorm1d(4)
    data = torch.randn(4000, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
    bn.train()
    with torch.no_grad():
        bn.momentum = None
        for chunk in data.split(100):
            bn(chunk)
    bn.eval()
    model = nn.Sequential(bn)
    assert _found(te.check(model, data[:64])) == set()
    report = te.check(nn.Sequential(nn.BatchNorm1d(4)), data[:64], gap_threshold=None)
    assert report.stat_gaps == [] and report.checks["BatchNorm statistics gap"] == "not measured"
    report = te.check(nn.Sequential(nn.BatchNorm1d(4)), data[:64])
    assert _found(report) == {("TE215", "0")} and "never updated" in report.warnings[0].message


# ----------------------------------------------------------------------------- hypothesis
class _MixAt(nn.Module):
    """Mixes samples through the batch mean iff ``mix``; otherwise per sample."""

    def __init__(self, mix: bool) -> None:
        super().__init__()
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0) if self.mix else x - x.mean(1, keepdim=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 9), samples=st.integers(1, 6), mix=st.booleans(), depth=st.integers(0, 3),
       seed=st.integers(0, 2**16))
def test_batch_mixing_found_at_its_module_for_any_batch(n: int, samples: int, mix: bool, depth: int, seed: int) -> None:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Sequential(nn.Linear(5, 5), nn.Tanh()) for _ in range(depth)]
    model = nn.Sequential(*layers, _MixAt(mix), nn.Linear(5, 2))
    report = te.check(model, torch.randn(n, 5), samples=samples, train_checks=False)
    assert _found(report) == ({("TE211", str(depth))} if mix else set()), str(report)
    assert report.forwards == 3 + min(samples, n)


def test_batchnorm_built_in_forward_is_not_model_state() -> None:
    """A BatchNorm created inside forward runs in training mode (TE213, TE211), but its statistics are
    thrown away after each call: they are not the model's state (no TE212)."""

    class BuildsNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.BatchNorm1d(6)(self.fc(x))

    report = te.check(nn.Sequential(BuildsNorm(), nn.Linear(6, 2)), torch.randn(5, 6))
    assert _found(report) == {("TE211", "0.<BatchNorm1d>"), ("TE213", "0.<BatchNorm1d>")}
    assert report.checks["state unchanged by eval"] == "passed"


def test_mapping_example_is_passed_as_keywords() -> None:
    from collections import UserDict

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, left: torch.Tensor, right: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            return scale * (self.a(left) + self.b(right))

    batch = UserDict(left=torch.randn(5, 3), right=torch.randn(5, 4), scale=2.0)
    report = te.check(TwoInputs(), batch)
    assert report.ok and report.checks["batch-independent in eval"] == "passed"


def test_reordered_batch_catches_what_the_checked_sample_alone_does_not() -> None:
    """Sample 0 is the only one checked alone and is unaffected in order; the reordered batch moves
    it behind another sample, whose features then leak into it."""

    class AddPrevious(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.cat([torch.zeros_like(x[:1]), x[:-1]])

    report = te.check(nn.Sequential(nn.Linear(3, 3), AddPrevious()), torch.randn(5, 3), samples=1)
    assert report.samples == [0]
    assert _found(report) == {("TE211", "1")}
    assert "reordered" in report.errors[0].message


def test_batch_dependence_before_the_randomness_is_still_reported() -> None:
    model = nn.Sequential(nn.Linear(4, 4), zoo.BatchCenter(), zoo.NoisyBlock())
    model[2].fc = nn.Linear(4, 4)
    report = te.check(model, torch.randn(6, 4))
    assert _found(report) == {("TE210", "2"), ("TE211", "1")}
    model = nn.Sequential(nn.Linear(8, 8), zoo.NoisyBlock(), zoo.BatchCenter())
    report = te.check(model, torch.randn(6, 8))
    assert _found(report) == {("TE210", "1")}
    assert report.checks["batch-independent in eval"].startswith("inconclusive")


def test_functional_batch_norm_without_running_stats_is_batch_dependence_not_a_mode_bug() -> None:
    class NoStatsNorm(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.batch_norm(x, None, None, training=True)  # like track_running_stats=False

    report = te.check(nn.Sequential(nn.Linear(4, 4), NoStatsNorm()), torch.randn(6, 4))
    assert _found(report) == {("TE211", "1")}
    assert "F.batch_norm" in report.errors[0].message


def test_flags_of_modules_outside_the_registry_are_restored() -> None:
    class Flipper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.helpers = [nn.Dropout(0.2)]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.helpers[0].eval()  # changes a flag model.eval() never reaches
            return self.helpers[0](x)

    model, x = nn.Sequential(nn.Linear(3, 3), Flipper()), torch.randn(4, 3)
    before = _state(model)
    assert model[1].helpers[0].training
    assert te.check(model, x).ok
    _assert_same_state(model, before)
    assert model[1].helpers[0].training
