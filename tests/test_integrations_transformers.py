"""The Hugging Face callbacks, run inside a real ``transformers.Trainer`` on CPU for a few steps.

Models are built from configs (a two-layer BERT) or are plain ``nn.Module``s returning a
loss, so nothing is downloaded (``HF_HUB_OFFLINE=1``). BatchNorm statistics are compared
with a float64 mean/variance of the layer's inputs over the whole training set computed
here; the guard must stay silent (``on="raise"``) on correct jobs and name the bug on
broken ones.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from integrations_support import _no_guard_left, _one_thread, close, import_error_without  # noqa: E402, F401

import traineval as te  # noqa: E402
from traineval.integrations.transformers import (  # noqa: E402
    EvalContract,
    EvalContractError,
    ModeGuard,
    PreciseBatchNorm,
)
from traineval.runtime import _interceptor as _guard_runtime  # noqa: E402


# ------------------------------------------------------------------------------ fixtures
class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 100, (n, 12), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


class Features(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g) * 3 + 1
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.labels[i]}


class BNNet(nn.Module):
    """A plain module the Trainer accepts: returns a dict with ``loss``."""

    def __init__(self, bug: str = "") -> None:
        super().__init__()
        self.bug = bug
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(16, 2)

    def forward(self, x, labels=None):
        h = self.body(x)
        if self.bug == "functional-dropout":
            h = F.dropout(h, 0.5)  # stays active in eval
        logits = self.head(h)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out

    def train(self, mode: bool = True):
        super().train(mode)
        if self.bug == "dropout-kept-in-eval":
            self.body[3].eval()  # a train() override that keeps a trainable part in eval
        return self


class Seen(transformers.TrainerCallback):
    """What each evaluation used: BatchNorm statistics and the weights feeding the layer."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def on_evaluate(self, args, state, control, model=None, **kw):
        self.seen.append({"mean": model.body[1].running_mean.clone(), "var": model.body[1].running_var.clone(),
                          "weight": model.body[0].weight.detach().clone(), "bias": model.body[0].bias.detach().clone()})


def bert():
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def train(model, callbacks, tmp_path, train_set=None, eval_set=None, **kw):
    opts = dict(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=16, per_device_eval_batch_size=16,
                eval_strategy="steps", eval_steps=2, save_strategy="no", report_to=[], use_cpu=True,
                logging_strategy="no", disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
                learning_rate=0.05)
    opts.update(kw)
    args = transformers.TrainingArguments(**opts)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=train_set if train_set is not None else Features(64),
        eval_dataset=eval_set if eval_set is not None else Features(32, 1), callbacks=callbacks,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        trainer.train()
    return trainer


def population(weight, bias, data: Features):
    h = data.x.double() @ weight.double().T + bias.double()
    return h.mean(0), h.var(0, unbiased=True)


# ----------------------------------------------------------------------- PreciseBatchNorm
def test_precise_bn_recalibrates_before_each_evaluation_and_at_train_end(tmp_path):
    torch.manual_seed(0)
    model, data = BNNet(), Features(64)
    cb, seen = PreciseBatchNorm(num_batches=None), Seen()  # every batch: the Trainer's shuffling does not matter
    train(model, [cb, seen], tmp_path, train_set=data, max_steps=5)
    assert len(seen.seen) == 3  # evaluations after steps 2, 4 and the final step 5
    for v in seen.seen:
        mean, var = population(v["weight"], v["bias"], data)
        assert close(v["mean"], mean) and close(v["var"], var)
    assert [r.batches for r in cb.reports] == [4, 4, 4]  # nothing left to redo at the end
    assert [r.layers[0].samples for r in cb.reports] == [64, 64, 64]
    mean, var = population(model.body[0].weight, model.body[0].bias, data)
    assert close(model.body[1].running_mean, mean) and close(model.body[1].running_var, var)


def test_precise_bn_every_n_evals_and_end_of_training(tmp_path):
    torch.manual_seed(0)
    model, data = BNNet(), Features(64)
    cb, seen = PreciseBatchNorm(num_batches=None, every_n_evals=2), Seen()
    train(model, [cb, seen], tmp_path, train_set=data, max_steps=5, eval_steps=2)
    checks = []
    for v in seen.seen:
        mean, _ = population(v["weight"], v["bias"], data)
        checks.append(close(v["mean"], mean))
    assert checks == [False, True, False]
    assert len(cb.reports) == 2  # before the second evaluation, then at the end (training ran since)
    mean, var = population(model.body[0].weight, model.body[0].bias, data)
    assert close(model.body[1].running_mean, mean) and close(model.body[1].running_var, var)


def test_precise_bn_leaves_training_and_random_streams_alone(tmp_path):
    def run(callbacks):
        torch.manual_seed(0)
        model = BNNet()
        train(model, callbacks, tmp_path, max_steps=4, per_device_train_batch_size=8)
        return model

    plain, precise = run([]), run([PreciseBatchNorm(num_batches=3)])
    for (name, a), (_, b) in zip(plain.named_parameters(), precise.named_parameters(), strict=True):
        assert torch.equal(a, b), name  # the pass draws no random number of the job's
    assert not torch.equal(plain.body[1].running_mean, precise.body[1].running_mean)
    assert precise.body[1].num_batches_tracked.item() == 3


def test_precise_bn_warns_when_the_model_has_no_batchnorm(tmp_path):
    cb = PreciseBatchNorm()
    with pytest.warns(te.TraineValWarning, match="no normalisation layer with running statistics"):
        train(bert(), [cb], tmp_path, train_set=Tokens(16), eval_strategy="no", max_steps=1)
    assert cb.reports == []


def test_precise_bn_arguments_are_checked_at_construction():
    with pytest.raises(ValueError, match="every_n_evals must be at least 1, got 0"):
        PreciseBatchNorm(every_n_evals=0)
    with pytest.raises(ValueError, match="dropout must be one of 'off', 'on'"):
        PreciseBatchNorm(dropout="yes")
    with pytest.raises(TypeError, match="expected an iterable of batches for data, got int 3"):
        PreciseBatchNorm(data=3)


# ------------------------------------------------------------------------------ ModeGuard
def test_mode_guard_and_contract_are_silent_on_a_tiny_bert(tmp_path):
    """from a config, trained with evaluations in between: nothing to report."""
    guard = ModeGuard(on="raise")
    contract = EvalContract(example={"input_ids": torch.randint(0, 100, (4, 12))}, samples=2)
    model = bert().eval()  # as from_pretrained returns it: the Trainer's train() handles that
    train(model, [guard, contract], tmp_path, train_set=Tokens(32), eval_set=Tokens(16, 1),
          per_device_train_batch_size=8, learning_rate=1e-3)
    assert guard.diagnostics == [] and guard.summaries[0].total == 0
    assert contract.report is not None and contract.report.ok


def test_mode_guard_is_silent_on_a_correct_batchnorm_job(tmp_path):
    guard = ModeGuard(on="raise")
    train(BNNet(), [guard, PreciseBatchNorm(num_batches=2)], tmp_path)
    assert guard.diagnostics == []


@pytest.mark.parametrize(
    ("bug", "batch", "code", "where"),
    [
        ("dropout-kept-in-eval", 16, "TE106", "body.3"),
        ("functional-dropout", 16, "TE103", ""),
        ("", 4, "TE105", "body.1"),
    ],
)
def test_mode_guard_reports_a_broken_job(tmp_path, bug, batch, code, where):
    guard = ModeGuard(on="log")
    train(BNNet(bug), [guard], tmp_path, per_device_train_batch_size=batch)
    assert [(d.code, d.where) for d in guard.diagnostics] == [(code, where)]


def test_mode_guard_raise_stops_training_and_removes_its_hooks(tmp_path):
    with pytest.raises(te.GuardError, match=r"TE103 `BNNet` \(BNNet\) is in eval mode but its forward called F.drop"):
        train(BNNet("functional-dropout"), [ModeGuard(on="raise")], tmp_path)
    # the Trainer has no failure event: the hooks go when the callback goes
    import gc

    gc.collect()
    assert not _guard_runtime.installed()


def test_mode_guard_remove_after_a_failed_train(tmp_path):
    guard = ModeGuard(on="raise")
    with pytest.raises(te.GuardError):
        train(BNNet("functional-dropout"), [guard], tmp_path)
    assert guard.guard is not None and _guard_runtime.installed()
    guard.remove()
    assert guard.guard is None and not _guard_runtime.installed()
    assert [d.code for d in guard.diagnostics] == ["TE103"]


# --------------------------------------------------------------------------- EvalContract
def test_eval_contract_fails_fast_with_the_report(tmp_path):
    model = BNNet("functional-dropout")
    before = model.head.weight.detach().clone()
    cb = EvalContract(example={"x": torch.randn(8, 8)})
    with pytest.raises(EvalContractError, match=r"(?s)eval contract: \d error.*TE210.*TE214") as info:
        train(model, [cb], tmp_path)
    assert info.value.report is cb.report and {"TE210", "TE214"} <= set(cb.report.codes())
    assert torch.equal(model.head.weight, before)  # not a single training step


def test_eval_contract_fail_on_warning(tmp_path):
    class Inert(BNNet):
        def __init__(self):
            super().__init__()
            self.body[1].momentum = 0.0  # BatchNorm statistics never move in training: TE216 (warning)

    with pytest.warns(te.TraineValWarning, match="TE216"):
        train(Inert(), [EvalContract(example={"x": torch.randn(8, 8)})], tmp_path, max_steps=1, eval_strategy="no")
    with pytest.raises(EvalContractError, match="TE216"):
        train(Inert(), [EvalContract(example={"x": torch.randn(8, 8)}, fail_on="warning")], tmp_path)


# ----------------------------------------------------------------------- import behaviour
def test_traineval_does_not_import_frameworks_and_missing_transformers_is_explained():
    message = import_error_without(["transformers"], "traineval.integrations.transformers")
    assert 'pip install "traineval[transformers] @ git+https://github.com/traineval/traineval"' in message
