"""te.guard on realistic training loops: each mode bug caught with the right code and module,
and look-alike loops that must stay silent.

Evidence is checked against PyTorch itself where possible: when the guard says BatchNorm ran
in eval during training, its running statistics really did not move; when it says a no-grad
pass ran in training mode, they really did.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import traineval as te
import traineval.examples as ex

# ------------------------------------------------------------------------------ helpers


def loader(n: int = 64, batch: int = 16, features: int = 20, classes: int = 10, drop_last: bool = False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, drop_last=drop_last)


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, data) -> None:
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def validate(model: nn.Module, data) -> float:
    with torch.no_grad():
        return sum(F.cross_entropy(model(x), y).item() for x, y in data)


def train_and_validate(model: nn.Module, opt: torch.optim.Optimizer, data, epochs: int = 2) -> None:
    """The correct epoch loop: train() before training, eval() before validation."""
    for _ in range(epochs):
        model.train()
        train_epoch(model, opt, data)
        model.eval()
        validate(model, data)


def found_codes(found: list[te.Diagnostic]) -> list[tuple[str, str]]:
    return [(d.code, d.where) for d in found]


class LeakyBlock(nn.Module):
    """A custom block using functional dropout without passing the mode (the bug)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(torch.relu(self.fc(x)), 0.5)


class CorrectBlock(LeakyBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(torch.relu(self.fc(x)), 0.5, training=self.training)


def net(block: nn.Module, features: int = 20, width: int = 32, classes: int = 10) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, width), block, nn.Linear(width, classes))


# ------------------------------------------------------------------------ TE102 / TE106


@pytest.mark.parametrize("pass_optimizer", [True, False])
def test_validation_that_never_calls_train_again(pass_optimizer: bool) -> None:
    model, data = ex.mlp(), loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    means = []
    with te.guard(model, opt if pass_optimizer else None, on=found.append) as g:
        model.train()
        for _ in range(3):
            before = model[1].running_mean.clone()
            train_epoch(model, opt, data)
            means.append(torch.equal(before, model[1].running_mean))
            model.eval()
            validate(model, data)
    # independent truth: BatchNorm stopped updating from epoch 2 on — it trained in eval
    assert means == [False, True, True]
    assert found_codes(found) == [("TE102", "")]
    assert "SGD.step()" in found[0].message and "1 (BatchNorm1d)" in found[0].message
    assert g.summary().counts == {"TE102": {"": 2 * len(data)}}


def test_clean_epoch_loops_are_silent() -> None:
    model, data = ex.mlp(), loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append) as g:
        train_and_validate(model, opt, data)
        model.train()
        for _ in range(2):                                # the restoring form
            train_epoch(model, opt, data)
            with te.evaluating(model):
                validate(model, data)
        with te.inference(model):
            model(torch.randn(3, 20))
    assert found == [] and g.summary().total == 0


def test_submodule_left_in_eval_is_reported_once_at_its_top() -> None:
    model = ex.small_resnet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append):
        model.train()
        model.layer2.eval()                               # e.g. a helper flipped a block
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    assert found_codes(found) == [("TE106", "layer2")]
    assert "3 mode-sensitive module(s)" in found[0].message  # bn1, bn2, shortcut.1
    assert found[0].data["type"] == "BasicBlock"


def test_frozen_parts_and_policies_explain_eval_modules() -> None:
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    # linear probing: frozen backbone kept in eval on purpose
    model = ex.small_resnet()
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append):
        model.train()
        for part in (model.stem, model.layer1, model.layer2, model.layer3):
            part.eval()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    # frozen BatchNorm through the policy (affine parameters still train)
    model = ex.small_resnet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with te.guard(model, opt, on=found.append), te.freeze_batchnorm(model):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert found == []


def test_backward_fallback_without_any_optimizer() -> None:
    model, data = ex.mlp(), loader()
    found: list[te.Diagnostic] = []
    with te.guard(model, on=found.append):
        model.eval()                                       # then "train" by hand
        for x, y in data:
            F.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.01 * p.grad
                    p.grad = None
        # an input-gradient (saliency) pass in eval accumulates nothing into parameters
        x = torch.randn(4, 20, requires_grad=True)
        torch.autograd.grad(model(x).sum(), x)
    assert found_codes(found) == [("TE102", "")]
    assert found[0].message.startswith("a backward pass")


def test_saliency_pass_in_eval_is_silent() -> None:
    model = ex.mlp().eval()
    found: list[te.Diagnostic] = []
    with te.guard(model, on=found.append):
        x = torch.randn(4, 20, requires_grad=True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
    assert grad.shape == x.shape and found == []


# ---------------------------------------------------------------------------------- TE101


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_inference_in_training_mode(context: str) -> None:
    model, data = ex.mlp(), loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append):
        model.train()
        for i, (x, y) in enumerate(data):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if i == 1:                                      # "log some predictions"
                before = model[1].running_mean.clone()
                with torch.no_grad() if context == "no_grad" else torch.inference_mode():
                    model(x)
                # independent truth (claim C4): feeding data changed the running statistics
                assert not torch.equal(before, model[1].running_mean)
    assert found_codes(found) == [("TE101", "")]
    assert f"torch.{context}()" in found[0].message
    assert "3 mode-sensitive module(s)" in found[0].message    # BatchNorm1d and two Dropouts


def test_intended_no_grad_passes_are_silent() -> None:
    student, data = ex.mlp(), loader()
    teacher = copy.deepcopy(student)                        # EMA teacher, kept in training mode
    opt = torch.optim.SGD(student.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []

    def distill_epoch(allow_block: bool) -> None:
        for x, _ in data:
            with torch.no_grad(), te.allow("TE101") if allow_block else torch.no_grad():
                target = teacher(x).softmax(-1)
            opt.zero_grad()
            F.cross_entropy(student(x), target).backward()
            opt.step()
            with torch.no_grad():
                for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
                    pt.mul_(0.99).add_(ps, alpha=0.01)

    with te.guard(student, opt, on=found.append), te.guard(teacher, on=found.append):
        distill_epoch(allow_block=True)                     # te.allow context
    with te.guard(student, opt, on=found.append), te.guard(teacher, on=found.append, allow=["TE101"]):
        distill_epoch(allow_block=False)                    # per-model setting
    model = ex.mlp()
    with te.guard(model, on=found.append):
        with te.mc_dropout(model), torch.no_grad():         # a policy explains live dropout
            samples = torch.stack([model(torch.randn(4, 20)) for _ in range(3)])
        torch.optim.swa_utils.update_bn(data, model)        # re-estimates BN statistics on purpose
        te.recalibrate_batchnorm(model, data, progress=False)
    assert samples.shape == (3, 4, 10)
    assert found == []
    # without the allowance the same teacher pass is reported (the silence above is earned)
    with te.guard(teacher, on=found.append, name="teacher"), torch.no_grad():
        teacher(torch.randn(32, 20))
    assert found_codes(found) == [("TE101", "")] and "`teacher`" in found[0].message


# ---------------------------------------------------------------------------------- TE103


def test_functional_dropout_in_eval() -> None:
    model, data = net(LeakyBlock(32)), loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append):
        train_and_validate(model, opt, data)
        x = torch.randn(4, 20)
        with torch.no_grad():
            # independent truth (claim C5): the "eval" output is random
            assert not torch.equal(model(x), model(x))
    assert found_codes(found) == [("TE103", "1")]
    assert found[0].data["call"] == "F.dropout" and "training=True" in found[0].message
    assert "training=self.training" in found[0].fix


class Attention(nn.Module):
    def __init__(self, leaky: bool) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.p, self.leaky = 0.1, leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        p = self.p if (self.leaky or self.training) else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p)


class BatchStatsNorm(nn.Module):
    """A hand-written BatchNorm; ``leaky`` forgets to pass the mode."""

    def __init__(self, track: bool, leaky: bool) -> None:
        super().__init__()
        self.leaky = leaky
        self.register_buffer("mean", torch.zeros(16) if track else None)
        self.register_buffer("var", torch.ones(16) if track else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = True if self.leaky else (self.training or self.mean is None)
        return F.batch_norm(x, self.mean, self.var, training=training)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (Attention(leaky=True), [("TE103", "0")]),
        (BatchStatsNorm(track=True, leaky=True), [("TE103", "0")]),
        # look-alikes: the mode is passed, or the layer has no running statistics at all
        (Attention(leaky=False), []),
        (BatchStatsNorm(track=True, leaky=False), []),
        (BatchStatsNorm(track=False, leaky=True), []),
        (CorrectBlock(16), []),
        (nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5)), []),
        (nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True), []),
    ],
    ids=["sdpa", "batch_norm", "sdpa-ok", "batch_norm-ok", "no-stats", "dropout-ok", "nn.Dropout", "torch-layer"],
)
def test_functional_calls_in_eval(block: nn.Module, expected: list[tuple[str, str]]) -> None:
    model = nn.Sequential(block, nn.Linear(16, 4)).eval()
    found: list[te.Diagnostic] = []
    with te.guard(model, on=found.append), torch.no_grad():
        model(torch.randn(8, 5, 16) if not isinstance(block, BatchStatsNorm) else torch.randn(8, 16))
    assert found_codes(found) == expected


# ---------------------------------------------------------------------------------- TE104


class BuiltInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.Dropout(0.5)(torch.relu(self.fc(x)))


class PlainList(nn.Module):
    def __init__(self, registered: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 32)
        norms = [nn.BatchNorm1d(32)]
        self.norms = nn.ModuleList(norms) if registered else norms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[0](self.fc(x))


@pytest.mark.parametrize(
    ("block", "child"),
    [(BuiltInForward(), "Dropout(p=0.5, inplace=False)"), (PlainList(registered=False), "BatchNorm1d")],
)
def test_unregistered_mode_sensitive_module(block: nn.Module, child: str) -> None:
    model, data = net(block), loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append):
        train_and_validate(model, opt, data)
    assert found_codes(found) == [("TE104", "1")]
    assert found[0].data["child"] == child and found[0].data["child_mode"] == "training"
    if isinstance(block, PlainList):
        assert block.norms[0].training                     # independent truth: eval() never reached it


class Student(nn.Module):
    """Calls an EMA teacher kept out of the registry on purpose (not a submodule)."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.body = ex.mlp()
        self.__dict__["teacher"] = teacher

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x)
        return self.body(x) + 0 * target


def test_registered_or_separate_modules_are_silent() -> None:
    data = loader()
    found: list[te.Diagnostic] = []
    for model, validates in (
        (net(PlainList(registered=True)), True),
        (Student(ex.mlp().eval()), True),
        (net(BuiltInForward()), False),                 # built in forward, but only ever training
    ):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        with te.guard(model, opt, on=found.append, tracing="always"):
            model.train()
            train_epoch(model, opt, data)
            if validates:
                model.eval()
                validate(model, data)
    assert found == []


# ---------------------------------------------------------------------------------- TE105


def test_tiny_batchnorm_batches() -> None:
    model = ex.mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    found: list[te.Diagnostic] = []
    with te.guard(model, opt, on=found.append):
        model.train()
        train_epoch(model, opt, loader(n=70, batch=32))      # last batch: 6 samples
        train_epoch(model, opt, loader(n=70, batch=32, drop_last=True))
    assert found_codes(found) == [("TE105", "1")]
    assert found[0].data["count"] == 6 and found[0].data["shape"] == (6, 64)
    # batch size 1: reported first, then PyTorch itself refuses
    with (
        te.guard(model, opt, on=found.append, once=False),
        pytest.raises(ValueError, match="Expected more than 1 value per channel"),
    ):
        model(torch.randn(1, 20))
    assert found[-1].data["count"] == 1 and "PyTorch raises" in found[-1].message


def test_tiny_batchnorm_threshold_counts_spatial_values() -> None:
    model = ex.small_resnet()
    x = torch.randn(2, 3, 32, 32)
    found: list[te.Diagnostic] = []
    with te.guard(model, on=found.append):
        model(x)                                          # 2 × 32 × 32 … 2 × 8 × 8 = 128 values: fine
    assert found == []
    with te.guard(model, on=found.append, min_batchnorm_values=200):
        model(x)
    # the 8×8 maps of layer3 (and layer2's 16x16 ones are 512: fine)
    assert sorted(where for _, where in found_codes(found)) == ["layer3.bn1", "layer3.bn2", "layer3.shortcut.1"]
    assert {d.data["count"] for d in found} == {128}


def test_tiny_batches_without_batch_statistics_are_silent() -> None:
    model = ex.mlp()
    found: list[te.Diagnostic] = []
    with te.guard(model, on=found.append):
        with te.freeze_batchnorm(model):
            model.train()(torch.randn(2, 20))           # frozen BatchNorm: running statistics
        model.eval()(torch.randn(1, 20))                 # eval: running statistics
    assert found == []


# ----------------------------------------------------------------------- API and life cycle


def test_numerics_are_bit_identical() -> None:
    for build, make_x, make_y in (
        (ex.small_resnet, lambda: torch.randn(8, 3, 32, 32), lambda: torch.randint(0, 10, (8,))),
        (ex.transformer_classifier, lambda: torch.randint(0, 100, (8, 12)), lambda: torch.randint(0, 4, (8,))),
        (lambda: net(LeakyBlock(32)), lambda: torch.randn(8, 20), lambda: torch.randint(0, 10, (8,))),
    ):
        runs = []
        for guarded in ("off", "auto", "always"):
            torch.manual_seed(0)
            model = build()
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            torch.manual_seed(1)
            g = None if guarded == "off" else te.guard(model, opt, on=lambda d: None, tracing=guarded)
            outs = []
            for i in range(3):
                x, y = make_x(), make_y()
                model.train(i != 1)                      # a step in eval: findings on the way
                opt.zero_grad()
                out = model(x)
                F.cross_entropy(out, y).backward()
                outs += [out.detach(), *[p.grad.clone() for p in model.parameters()]]
                opt.step()
            with torch.no_grad():
                outs.append(model(x))                     # no-grad pass in training mode (TE101)
            outs.append(model.eval()(x).detach())         # eval (with grad: the same kernels every time)
            if g is not None:
                g.remove()
            runs.append(outs + [t.detach().clone() for t in model.state_dict().values()])
        for other in runs[1:]:
            assert all(torch.equal(a, b) for a, b in zip(runs[0], other, strict=True))


def test_nothing_stays_on_the_model() -> None:
    import pickle

    from torch.nn.modules import module as module_mod

    from traineval.core import tracing
    from traineval.runtime import _interceptor as _guard_runtime

    model = ex.mlp()
    before = (len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks))
    keys = list(model.state_dict())
    g = te.guard(model)
    model.eval()
    model(torch.randn(4, 20)).sum()                      # grad-enabled eval forward: backward fallback armed
    assert all(p._post_accumulate_grad_hooks for p in model.parameters())
    clone = copy.deepcopy(model)
    loaded = pickle.loads(pickle.dumps(model))
    for m in (model, clone, loaded):
        assert list(m.state_dict()) == keys
        assert not any(mod._forward_pre_hooks or mod._forward_hooks for mod in m.modules())
    for m in (clone, loaded):
        assert not any(p._post_accumulate_grad_hooks for p in m.parameters())
        assert not any("_compiled_call_impl" in mod.__dict__ for mod in m.modules())
    g.remove()
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())
    assert not any("_compiled_call_impl" in mod.__dict__ for mod in model.modules())
    assert (len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks)) == before
    assert not _guard_runtime.installed() and tracing._installed == []
    assert torch.overrides._get_current_function_mode_stack() == []
    g.remove()                                            # idempotent


class Boom(nn.Module):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("bad batch"), KeyboardInterrupt()])
def test_failing_forward_leaves_no_interception_behind(exc: BaseException) -> None:
    from traineval.core import tracing

    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), Boom(exc)).eval()
    g = te.guard(model)
    with pytest.raises(type(exc)):
        model(torch.randn(2, 4))                          # eval forward: module tracing was on
    model[2] = nn.Identity()
    model(torch.randn(2, 4))                             # the next forward recovers
    assert torch.overrides._get_current_function_mode_stack() == []
    assert tracing._installed == [] and tracing.module_stack() == []
    g.remove()
    assert torch.overrides._get_current_function_mode_stack() == []


def test_raise_stops_before_the_optimizer_step() -> None:
    model = ex.mlp().eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with te.guard(model, opt, on="raise"):
        F.cross_entropy(model(torch.randn(16, 20)), torch.zeros(16, dtype=torch.long)).backward()
        weights = [p.detach().clone() for p in model.parameters()]
        with pytest.raises(te.GuardError, match="TE102 `SGD.step\\(\\)` while `Sequential` is in eval mode") as info:
            opt.step()
    assert isinstance(info.value, RuntimeError) and info.value.diagnostic.code == "TE102"
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


def test_warn_points_at_user_code_and_log_uses_logging(caplog: pytest.LogCaptureFixture) -> None:
    model = ex.mlp()
    with te.guard(model), pytest.warns(te.TraineValWarning, match="TE101 .*torch.no_grad") as record, torch.no_grad():
        model(torch.randn(16, 20))
    assert record[0].filename == __file__
    with te.guard(model, on="log"), torch.no_grad(), caplog.at_level("WARNING", logger="traineval.guard"):
        model(torch.randn(16, 20))
    assert [r.levelname for r in caplog.records] == ["ERROR"] and "TE101" in caplog.records[0].getMessage()


def test_once_rules_allow_and_summary() -> None:
    model = ex.mlp()
    found: list[te.Diagnostic] = []
    with te.guard(model, on=found.append, once=False) as g:
        for _ in range(3):
            model(torch.randn(4, 20))
    assert found_codes(found) == [("TE105", "1")] * 3
    assert g.summary().counts == {"TE105": {"1": 3}} and "TE105  tiny-batchnorm-batch  1  3" in str(g.summary())
    found.clear()
    with te.guard(model, on=found.append, rules=["modes"]), torch.no_grad():
        model(torch.randn(4, 20))                         # TE101 only: TE105 not checked
    with te.guard(model, on=found.append, allow="TE105"), torch.no_grad(), te.allow("TE101"):
        model(torch.randn(4, 20))
    assert found_codes(found) == [("TE101", "")]


def test_student_and_teacher_guards_report_separately() -> None:
    student, teacher = ex.mlp(), ex.mlp()
    s_found: list[te.Diagnostic] = []
    t_found: list[te.Diagnostic] = []
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    with te.guard(student, opt, on=s_found.append), te.guard(teacher, on=t_found.append, name="teacher"):
        student.eval()
        with torch.no_grad():
            teacher(torch.randn(32, 20))                  # teacher left in training mode
        F.cross_entropy(student(torch.randn(32, 20)), torch.zeros(32, dtype=torch.long)).backward()
        opt.step()
    assert found_codes(s_found) == [("TE102", "")] and found_codes(t_found) == [("TE101", "")]


def test_argument_errors_are_actionable() -> None:
    model = ex.mlp()
    other = torch.optim.SGD(ex.mlp().parameters(), lr=0.1)
    with pytest.raises(TypeError, match="expected an nn.Module for model, got list"):
        te.guard([model[0]])
    with pytest.raises(ValueError, match="on must be 'warn', 'raise', 'log' or a callable, got 'print'"):
        te.guard(model, on="print")
    with pytest.raises(ValueError, match="unknown diagnostic code 'TE199'"):
        te.guard(model, rules=["TE199"])
    with pytest.raises(ValueError, match="TE201 is not a runtime code: te.guard checks TE101"):
        te.guard(model, allow=["TE201"])
    with pytest.raises(TypeError, match="expected diagnostic codes such as 'TE101' for rules, got int"):
        te.guard(model, rules=[101])
    with pytest.raises(TypeError, match="expected a torch.optim.Optimizer .* got Sequential"):
        te.guard(model, model)
    with pytest.raises(ValueError, match="holds none of the parameters of Sequential — pass the optimizer"):
        te.guard(model, other)
    with pytest.raises(ValueError, match="min_batchnorm_values must be at least 2"):
        te.guard(model, min_batchnorm_values=1)
    with pytest.raises(ValueError, match="tracing must be 'auto' or 'always'"):
        te.guard(model, tracing="never")  # type: ignore[arg-type]
    from traineval.runtime import _interceptor as _guard_runtime

    assert not _guard_runtime.installed()                 # failed constructions install nothing


def test_rule_pages_are_generated() -> None:
    from pathlib import Path

    from traineval.catalog import all_rules, render_markdown

    root = Path(__file__).resolve().parents[1]
    for rule in all_rules():
        if rule.code.startswith("TE1"):
            assert (root / rule.doc_path).read_text(encoding="utf-8") == render_markdown(rule), rule.code


def test_two_guards_on_one_model_and_a_raising_one() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), LeakyBlock(4))
    slot = model.__dict__.get("_compiled_call_impl")
    first: list[te.Diagnostic] = []
    g1 = te.guard(model, on=first.append)
    g2 = te.guard(model, on="raise")
    model.eval()
    with torch.no_grad(), pytest.raises(te.GuardError, match="TE103"):
        model(torch.randn(2, 4))                      # both trace the call, g2 raises from inside it
    assert torch.overrides._get_current_function_mode_stack() == []
    g1.remove()                                       # removed out of order
    model.train()
    with pytest.raises(te.GuardError, match="TE101"), torch.no_grad():
        model(torch.randn(2, 4))
    g2.remove()
    assert model.__dict__.get("_compiled_call_impl") is slot
    from traineval.core import tracing
    from traineval.runtime import _interceptor as _guard_runtime

    assert not _guard_runtime.installed() and tracing._installed == []


def test_scope_checks_a_step_that_calls_submodules_once():
    """guard.scope(): a step that calls submodules is checked like a forward of the model,
    and the model's own forward inside the scope is not counted twice."""
    import torch.nn.functional as F

    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return F.dropout(self.lin(x), 0.5)  # TE103 once the model is in eval

    model = nn.ModuleDict({"body": Body(), "head": nn.Linear(4, 2)})
    found = []
    with te.guard(model, on=found.append, once=False, tracing="always") as g:
        model.eval()
        with torch.no_grad(), g.scope(torch.ones(2, 4)):
            model["head"](model["body"](torch.ones(2, 4)))
    codes = sorted({(d.code, d.where) for d in found})
    assert codes == [("TE103", "body")]
    assert g.summary().counts["TE103"] == {"body": 1}

    class Whole(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(self.lin(x))

    whole = Whole()
    with te.guard(whole, on="log", once=False) as g, torch.no_grad(), g.scope():
        whole(torch.ones(2, 4))  # the model's own forward, inside its scope
    assert g.summary().counts == {"TE101": {"": 1}}  # once, not twice
