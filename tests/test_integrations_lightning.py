"""The Lightning callbacks, run inside a real ``lightning`` Trainer on CPU for a few steps.

Truth comes from outside the callbacks: BatchNorm statistics are compared with a float64
mean/variance of the layer's inputs over the same training batches computed here by
concatenation; the guard must stay silent (``on="raise"``) on correct jobs — sanity check,
validation, test and predict included — and name the bug on broken ones; the DDP test runs
``strategy="ddp"`` with two gloo processes launched by Lightning itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

pl = pytest.importorskip("lightning.pytorch")

from integrations_support import _no_guard_left, _one_thread, close, import_error_without  # noqa: E402, F401

import traineval as te  # noqa: E402
from traineval.integrations.lightning import EvalContract, EvalContractError, ModeGuard, PreciseBatchNorm  # noqa: E402
from traineval.runtime import _interceptor as _guard_runtime  # noqa: E402

DataLoader = torch.utils.data.DataLoader
TensorDataset = torch.utils.data.TensorDataset
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ fixtures
class Net(pl.LightningModule):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear; ``call`` chooses how steps run it."""

    def __init__(self, call: str = "self", bug: str = "") -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
        self.call, self.bug = call, bug
        self.seen: list[dict] = []  # what validation saw

    def forward(self, x):
        h = self.net[:4](x)
        if self.bug == "functional-dropout":
            h = F.dropout(h, 0.5)  # stays active in eval
        return self.net[4](h)

    def run(self, x):
        return self(x) if self.call == "self" else self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.run(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        if batch_idx == 0:
            bn = self.net[1]
            self.seen.append({
                "epoch": self.current_epoch, "sanity": self.trainer.sanity_checking,
                "mean": bn.running_mean.clone(), "var": bn.running_var.clone(),
                "weight": self.net[0].weight.detach().clone(), "bias": self.net[0].bias.detach().clone(),
            })
        if self.call == "direct" and self.bug == "functional-dropout-step":
            x = F.dropout(x, 0.5)  # in the step's own code, not in any forward
        self.log("val_loss", F.cross_entropy(self.run(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", F.cross_entropy(self.run(x), y))

    def predict_step(self, batch, batch_idx):
        return self.run(batch[0])

    def on_train_start(self):
        if self.bug == "dropout-left-in-eval":
            self.net[3].eval()  # forgotten: a submodule stays in eval during training

    def on_validation_model_eval(self):
        if self.bug != "validation-in-train-mode":
            super().on_validation_model_eval()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def dataset(n: int = 256, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 8, generator=g) * 3 + 1, torch.randint(0, 2, (n,), generator=g))


def trainer(callbacks, **kw) -> pl.Trainer:
    opts = dict(max_epochs=1, limit_train_batches=4, limit_val_batches=2, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=2)
    opts.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pl.Trainer(callbacks=callbacks, **opts)


def fit(model, callbacks, batch_size=32, data=None, **kw) -> pl.Trainer:
    tr = trainer(callbacks, **kw)
    data = data or dataset()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*(num_workers|LeafSpec|does not have many workers).*")
        tr.fit(model, DataLoader(data, batch_size=batch_size), DataLoader(dataset(64, seed=1), batch_size=32))
    return tr


def population(model: Net, data: TensorDataset, batches: int, batch_size: int = 32, weight=None, bias=None):
    """float64 mean and unbiased variance of BatchNorm's input over the first ``batches`` batches."""
    x = data.tensors[0][: batches * batch_size].double()
    w = (model.net[0].weight if weight is None else weight).detach().double()
    b = (model.net[0].bias if bias is None else bias).detach().double()
    h = x @ w.T + b
    return h.mean(0), h.var(0, unbiased=True)


# ----------------------------------------------------------------------- PreciseBatchNorm
def test_precise_bn_recalibrates_before_each_validation_and_at_fit_end():
    torch.manual_seed(0)
    model, data = Net(), dataset()
    cb = PreciseBatchNorm(num_batches=3)
    fit(model, [cb], max_epochs=2, limit_train_batches=5)
    sanity, *validations = model.seen
    assert sanity["sanity"] and torch.equal(sanity["mean"], torch.zeros(16))  # not before the sanity check
    assert [v["epoch"] for v in validations] == [0, 1]
    for v in validations:  # at each validation: population statistics of the weights of that moment
        mean, var = population(model, data, 3, weight=v["weight"], bias=v["bias"])
        assert close(v["mean"], mean) and close(v["var"], var)
    assert len(cb.reports) == 2  # end of fit: no training since the last validation, nothing to redo
    assert [r.batches for r in cb.reports] == [3, 3]
    assert cb.reports[0].layers[0].samples == 96 and cb.reports[0].layers[0].name == "net.1"
    # end of fit: nothing trained after the last validation, so its statistics are still exact
    mean, var = population(model, data, 3)
    assert close(model.net[1].running_mean, mean) and close(model.net[1].running_var, var)
    assert model.net[1].num_batches_tracked.item() == 3


def test_precise_bn_every_n_epochs_and_end_of_fit_after_training():
    torch.manual_seed(0)
    model, data = Net(), dataset()
    cb = PreciseBatchNorm(num_batches=2, every_n_epochs=2)
    fit(model, [cb], max_epochs=3, limit_train_batches=3)
    by_epoch = {v["epoch"]: v for v in model.seen if not v["sanity"]}
    assert sorted(by_epoch) == [0, 1, 2]
    for epoch, v in by_epoch.items():
        mean, var = population(model, data, 2, weight=v["weight"], bias=v["bias"])
        assert close(v["mean"], mean) == (epoch == 1), epoch  # epochs 0 and 2 keep the moving average
    assert len(cb.reports) == 2  # epoch 1, then end of fit (training ran after it)
    mean, var = population(model, data, 2)
    assert close(model.net[1].running_mean, mean) and close(model.net[1].running_var, var)


def test_precise_bn_leaves_training_and_random_streams_alone():
    """Training with the callback gives bit-identical weights: shuffling and dropout draw the
    same random numbers (the recalibration pass shuffles its own loader and is undone)."""
    def run(callbacks):
        torch.manual_seed(3)
        model = Net()
        tr = trainer(callbacks, max_epochs=2, limit_train_batches=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tr.fit(model, DataLoader(dataset(), batch_size=32, shuffle=True),
                   DataLoader(dataset(64, 1), batch_size=32))
        return model, torch.rand(1)

    plain, after_plain = run([])
    precise, after_precise = run([PreciseBatchNorm(num_batches=2)])
    for (name, a), (_, b) in zip(plain.named_parameters(), precise.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(after_plain, after_precise)
    assert not torch.equal(plain.net[1].running_mean, precise.net[1].running_mean)
    assert precise.training and all(m.training for m in precise.modules())


class FrozenBN(Net):
    """A second BatchNorm that the job keeps in eval with ``bn.eval()`` in a hook (no policy)."""

    def __init__(self):
        super().__init__()
        self.pre = nn.BatchNorm1d(8)

    def forward(self, x):
        return super().forward(self.pre(x))

    def run(self, x):
        return self(x)

    def on_train_epoch_start(self):
        self.pre.eval()


def test_precise_bn_keeps_statistics_of_layers_the_job_keeps_in_eval():
    torch.manual_seed(0)
    model = FrozenBN()
    with torch.no_grad():
        model.pre.running_mean.fill_(0.5)
        model.pre.running_var.fill_(2.0)
    cb = PreciseBatchNorm(num_batches=2)
    fit(model, [cb], limit_train_batches=3)
    assert torch.equal(model.pre.running_mean, torch.full((8,), 0.5))
    assert torch.equal(model.pre.running_var, torch.full((8,), 2.0))
    assert [r.frozen for r in cb.reports] == [["pre"]]
    assert [x.name for x in cb.reports[0].layers] == ["net.1"]
    assert not model.pre.training and "train" not in vars(model.pre)  # no policy left behind


def test_precise_bn_with_persistent_workers_does_not_disturb_the_epoch():
    """A mid-epoch validation (val_check_interval) iterates the training loader again: with
    persistent workers that would reset the epoch's own iterator."""
    seen: list[int] = []

    class Indexed(Net):
        def training_step(self, batch, batch_idx):
            seen.extend(batch[2].tolist())
            return super().training_step(batch[:2], batch_idx)

    data = dataset(128)
    indexed = TensorDataset(*data.tensors, torch.arange(128))
    cb = PreciseBatchNorm(num_batches=2, forward=lambda module, batch: module(batch[0]))
    tr = trainer([cb], limit_train_batches=None, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.fit(Indexed(), DataLoader(indexed, batch_size=32, num_workers=1, persistent_workers=True),
               DataLoader(dataset(64, 1), batch_size=32))
    assert sorted(seen) == list(range(128))  # every sample exactly once in the epoch
    assert len(cb.reports) == 2  # two mid-epoch validations (the second ends the epoch)


def test_precise_bn_refuses_a_module_without_forward_before_training():
    class NoForward(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4))

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = NoForward()
    before = model.net[0].weight.detach().clone()
    with pytest.raises(ValueError, match=r"defines no forward\(\); define forward\(\) or pass forward="):
        fit(model, [PreciseBatchNorm()], limit_val_batches=0)
    assert torch.equal(model.net[0].weight, before)  # stopped before any step
    cb = PreciseBatchNorm(num_batches=2, forward=lambda module, batch: module.net(batch[0]))
    fit(model, [cb], limit_val_batches=0)
    assert len(cb.reports) == 1


def test_precise_bn_failure_restores_statistics_and_stops_fit():
    def forward(module, batch):
        module(batch[0])
        raise RuntimeError("data pipeline broke")

    torch.manual_seed(0)
    model = Net()
    cb = PreciseBatchNorm(num_batches=2, forward=forward)
    recorded = {}

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            recorded["mean"] = pl_module.net[1].running_mean.clone()

    with pytest.raises(RuntimeError, match="data pipeline broke"):
        fit(model, [Record(), cb], num_sanity_val_steps=0)
    assert torch.equal(model.net[1].running_mean, recorded["mean"])


def test_precise_bn_arguments_are_checked_at_construction():
    with pytest.raises(TypeError, match="expected a positive int for num_batches, got float 2.5"):
        PreciseBatchNorm(num_batches=2.5)
    with pytest.raises(ValueError, match="every_n_epochs must be at least 1, got 0"):
        PreciseBatchNorm(every_n_epochs=0)
    with pytest.raises(ValueError, match="order must be one of 'single-pass', 'layerwise'"):
        PreciseBatchNorm(order="fast")
    with pytest.raises(TypeError, match="callable forward"):
        PreciseBatchNorm(forward=3)
    with pytest.raises(te.TraineValError):
        PreciseBatchNorm(data=5)


# ------------------------------------------------------------------------------ ModeGuard
@pytest.mark.parametrize("call", ["self", "direct"])
def test_mode_guard_is_silent_on_a_correct_job(call):
    """fit with sanity check and validation, then validate, test and predict: nothing to report."""
    torch.manual_seed(0)
    model = Net(call=call)
    cb = ModeGuard(on="raise")
    tr = fit(model, [cb, PreciseBatchNorm(num_batches=2)], max_epochs=2)
    loader = DataLoader(dataset(64, 1), batch_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.validate(model, loader, verbose=False)
        tr.test(model, loader, verbose=False)
        tr.predict(model, loader)
    assert cb.diagnostics == []
    assert len(cb.summaries) == 4 and all(s.total == 0 for s in cb.summaries)


@pytest.mark.parametrize(
    ("bug", "call", "code", "where", "count"),
    [
        ("dropout-left-in-eval", "self", "TE106", "net.3", 4),          # at each of the 4 optimizer steps
        ("functional-dropout", "self", "TE103", "", 4),                 # sanity check (2) + validation (2)
        ("functional-dropout-step", "direct", "TE103", "", 4),          # F.dropout in validation_step's own code
        ("validation-in-train-mode", "direct", "TE101", "", 4),         # validation never calls eval()
        ("validation-in-train-mode", "self", "TE101", "", 4),           # counted once per batch, not twice
    ],
)
def test_mode_guard_reports_a_broken_job(bug, call, code, where, count):
    torch.manual_seed(0)
    cb = ModeGuard(on="log", tracing="always")  # every forward traced, so that every occurrence is counted
    fit(Net(call=call, bug=bug), [cb])
    assert [(d.code, d.where) for d in cb.diagnostics] == [(code, where)]
    assert cb.summaries[0].counts == {code: {where: count}}


def test_mode_guard_reports_tiny_batchnorm_batches():
    cb = ModeGuard(on="log")
    fit(Net(), [cb], batch_size=4)
    assert [(d.code, d.where) for d in cb.diagnostics] == [("TE105", "net.1")]
    assert "4 value(s) per channel" in cb.diagnostics[0].message


def test_mode_guard_raise_stops_the_job_and_removes_its_hooks():
    with pytest.raises(te.GuardError, match=r"TE106 .*`net.3` \(Dropout\) is in eval mode"):
        fit(Net(bug="dropout-left-in-eval"), [ModeGuard(on="raise")])
    assert not _guard_runtime.installed()


def test_mode_guard_warns_by_default_and_honours_rules():
    with pytest.warns(te.TraineValWarning, match="TE105"):
        fit(Net(), [ModeGuard()], batch_size=4)
    cb = ModeGuard(on="log", rules=["modes"])
    fit(Net(), [cb], batch_size=4)
    assert cb.diagnostics == []


def test_mode_guard_options_are_checked_at_construction():
    with pytest.raises(ValueError, match="on must be 'warn', 'raise', 'log' or a callable"):
        ModeGuard(on="shout")
    with pytest.raises(ValueError, match="TE210 is not a runtime code"):
        ModeGuard(rules=["TE210"])
    assert not _guard_runtime.installed()


# --------------------------------------------------------------------------- EvalContract
def test_eval_contract_passes_a_correct_model_and_keeps_it_intact():
    torch.manual_seed(0)
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = {}

    class After(pl.Callback):
        def on_fit_start(self, trainer, pl_module):
            state.update({k: v.clone() for k, v in pl_module.state_dict().items()})
            state["modes"] = te.modes(pl_module)

    cb = EvalContract(example=torch.randn(8, 8), samples=2)
    fit(model, [cb, After()], limit_train_batches=1)
    assert cb.report is not None and cb.report.ok
    modes = state.pop("modes")
    assert all(torch.equal(before[k], state[k]) for k in before)
    assert all(modes.values())


def test_eval_contract_fails_fast_with_the_report():
    model = Net(bug="functional-dropout")
    before = model.net[0].weight.detach().clone()
    cb = EvalContract(example=lambda trainer: torch.randn(8, 8))
    with pytest.raises(EvalContractError, match=r"(?s)eval contract: \d error.*TE210.*TE214") as info:
        fit(model, [cb])
    assert info.value.report is cb.report and not cb.report.ok
    assert {"TE210", "TE214"} <= set(cb.report.codes())
    assert isinstance(info.value, AssertionError)
    assert torch.equal(model.net[0].weight, before)  # not a single training step


@pytest.mark.parametrize("source", ["example_input_array", "first batch"])
def test_eval_contract_without_example_uses_what_lightning_offers(source):
    for bug, ok in ((None, True), ("functional-dropout", False)):
        model = Net(bug=bug) if bug else Net()
        if source == "example_input_array":
            model.example_input_array = torch.randn(8, 8)
        before = model.net[0].weight.detach().clone()
        cb = EvalContract(samples=2)
        if ok:
            fit(model, [cb], limit_train_batches=1)
            assert cb.report is not None and cb.report.ok
        else:
            with pytest.raises(EvalContractError, match="TE210"):
                fit(model, [cb], limit_train_batches=1)
            assert {"TE210", "TE214"} <= set(cb.report.codes())
            assert torch.equal(model.net[0].weight, before)  # checked before the first step


def test_eval_contract_arguments():
    with pytest.raises(ValueError, match="fail_on must be one of 'error', 'warning'"):
        EvalContract(example=torch.randn(4, 8), fail_on="info")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        EvalContract(example=torch.randn(4, 8), gap=1.0)


# ----------------------------------------------------------------------- import behaviour
def test_traineval_does_not_import_frameworks_and_missing_lightning_is_explained():
    message = import_error_without(["lightning", "pytorch_lightning"], "traineval.integrations.lightning")
    assert 'pip install "traineval[lightning] @ git+https://github.com/traineval/traineval"' in message


# ----------------------------------------------------------------------------------- DDP
DDP_JOB = textwrap.dedent('''
    import json, sys, warnings
    import torch, torch.nn as nn, torch.nn.functional as F
    import lightning.pytorch as pl
    from traineval.integrations.lightning import EvalContract, ModeGuard, PreciseBatchNorm

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", F.cross_entropy(self(batch[0]), batch[1]), sync_dist=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(n, 8, generator=g) * 3 + 1, torch.randint(0, 2, (n,), generator=g)
        return torch.utils.data.TensorDataset(x, y)

    torch.manual_seed(0)
    model = Net()
    precise, guard = PreciseBatchNorm(num_batches=None), ModeGuard(on="raise")
    contract = EvalContract(example=torch.randn(8, 8))
    trainer = pl.Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, limit_val_batches=2,
                         callbacks=[precise, guard, contract], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, torch.utils.data.DataLoader(data(192, 0), batch_size=16),
                torch.utils.data.DataLoader(data(64, 1), batch_size=16))
    bn = model.net[1]
    result = {
        "rank": trainer.global_rank, "world": trainer.world_size,
        "mean": bn.running_mean.tolist(), "var": bn.running_var.tolist(), "tracked": int(bn.num_batches_tracked),
        "weight": model.net[0].weight.tolist(), "bias": model.net[0].bias.tolist(),
        "reports": [r.to_dict() for r in precise.reports],
        "findings": [d.code for d in guard.diagnostics], "contract_ok": contract.report.ok,
    }
    with open(f"{sys.argv[1]}.{trainer.global_rank}.json", "w") as f:
        json.dump(result, f)
''')


@pytest.mark.distributed
@pytest.mark.slow
def test_ddp_two_processes_end_with_identical_population_statistics(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(DDP_JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"out.{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["world"] == 2
    a, b = ranks
    assert a["mean"] == b["mean"] and a["var"] == b["var"]  # bit-identical across ranks
    assert a["weight"] == b["weight"]
    # equal to one process over the union of the shards: the whole training set, final weights
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(192, 8, generator=g) * 3 + 1).double()
    h = x @ torch.tensor(a["weight"], dtype=torch.float64).T + torch.tensor(a["bias"], dtype=torch.float64)
    assert torch.allclose(torch.tensor(a["mean"], dtype=torch.float64), h.mean(0), atol=1e-5)
    assert torch.allclose(torch.tensor(a["var"], dtype=torch.float64), h.var(0), rtol=1e-5, atol=1e-5)
    assert a["tracked"] == 12  # 6 batches per rank x 2 ranks
    for r in ranks:
        assert [rep["world_size"] for rep in r["reports"]] == [2, 2]  # before each of the two validations
        assert r["reports"][-1]["layers"][0]["samples"] == 192
        assert r["findings"] == [] and r["contract_ok"]
