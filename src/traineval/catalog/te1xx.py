"""TE1xx — mode bugs caught while a job runs, by ``te.guard`` (see :mod:`traineval.runtime.guard`).

Each rule belongs to a family (:data:`FAMILIES`) that shares one detection mechanism, so the
guard's cost can be measured and switched per family (``benchmarks/bench_guard.py``).
"""

from __future__ import annotations

from traineval.diagnostics import Rule, Severity

RULES: list[Rule] = [
    Rule(
        code="TE101",
        name="inference-in-training-mode",
        severity=Severity.ERROR,
        message=(
            "`{module}` ran a forward under {context} with {count} mode-sensitive module(s) in "
            "training mode ({examples}): dropout is active and BatchNorm uses and updates batch statistics"
        ),
        fix=(
            "call `model.eval()` before inference (or use `with te.inference(model):`); if a no-grad "
            "pass in training mode is intended (EMA/teacher targets), wrap it in `te.allow(\"TE101\")`"
        ),
        summary=(
            "A forward of the guarded model runs under `torch.no_grad()` or `torch.inference_mode()` "
            "while mode-sensitive modules (BatchNorm, Dropout, …) are in training mode, and no "
            "traineval policy (such as `te.mc_dropout`) explains it."
        ),
        why=(
            "`no_grad` and `inference_mode` only switch off gradient tracking; they do not change "
            "the mode. The pass therefore drops units at random, so the same input gives different "
            "outputs (claim C5), normalises with the statistics of the current batch, so small "
            "batches distort the output (C6), and overwrites BatchNorm's running statistics with "
            "evaluation data although nothing is trained (C4). The usual cause is a validation or "
            "sampling pass in the middle of training that forgot `model.eval()`."
        ),
        wrong="""
guard = te.guard(model, optimizer)
for epoch in range(epochs):
    train_one_epoch(model, optimizer)
    with torch.no_grad():                  # TE101: the model is still in training mode
        accuracy = evaluate(model, val_loader)
""",
        right="""
guard = te.guard(model, optimizer)
for epoch in range(epochs):
    model.train()
    train_one_epoch(model, optimizer)
    with te.inference(model):              # eval + inference_mode, modes restored after
        accuracy = evaluate(model, val_loader)

# an intended no-grad pass in training mode (mean-teacher / EMA targets):
with torch.no_grad(), te.allow("TE101"):
    targets = teacher(x)
""",
        known_problems=(
            "A pass whose purpose is to re-estimate BatchNorm statistics runs in training mode "
            "under `no_grad` on purpose. `te.recalibrate_batchnorm` is silent by construction, and "
            "so are passes where every BatchNorm in training mode has `momentum=None` or "
            "`momentum=1.0` (what `torch.optim.swa_utils.update_bn` and fvcore's `update_bn_stats` "
            "set); any other intended pass needs `te.allow(\"TE101\")` or "
            "`te.guard(model, allow=[\"TE101\"])`. Only the guarded model's own forward is "
            "checked, not a submodule called on its own under `no_grad`."
        ),
        claims=("C1", "C4", "C5", "C6"),
        references=("PyTorch issue #76383 (a built-in warning was declined: it could not be switched off)",),
        related=("TE201",),
    ),
    Rule(
        code="TE102",
        name="training-step-in-eval-mode",
        severity=Severity.ERROR,
        message=(
            "{trigger} while `{module}` is in eval mode: {count} mode-sensitive module(s) ({examples}) "
            "train without dropout and with frozen BatchNorm statistics"
        ),
        fix=(
            "call `model.train()` at the start of every training epoch, or run validation inside "
            "`with te.evaluating(model):` so the previous modes come back afterwards"
        ),
        summary=(
            "An optimizer step (or, when no optimizer step has been seen, a backward pass that "
            "accumulates gradients into the model's parameters) happens while the guarded model is "
            "in eval mode and mode-sensitive modules that no policy freezes are in eval."
        ),
        why=(
            "The classic leftover: a validation pass calls `model.eval()` and the training loop "
            "never calls `model.train()` again, so every later epoch trains without dropout and "
            "with BatchNorm normalising by stale running statistics that are no longer updated "
            "(claims C2, C3, C8). Nothing fails; the model just trains worse."
        ),
        wrong="""
for epoch in range(epochs):
    for x, y in train_loader:              # from epoch 2 on: TE102, still in eval
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    validate(model)
""",
        right="""
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with te.evaluating(model):             # back to the previous modes on exit
        validate(model)
""",
        known_problems=(
            "Modules whose own parameters (or, for dropout, whose parent's parameters) all have "
            "`requires_grad=False` are treated as deliberately frozen and not reported. Without an "
            "optimizer step the rule falls back to backward passes, which an adversarial-example "
            "or saliency pass through an eval model also makes: pass the optimizer (or let the "
            "guard see any `torch.optim` step) and the backward fallback is switched off."
        ),
        claims=("C1", "C2", "C3", "C8"),
        related=("TE106", "TE202"),
    ),
    Rule(
        code="TE103",
        name="functional-dropout-in-eval",
        severity=Severity.ERROR,
        message="`{module}` ({type}) is in eval mode but its forward called {call} with {detail}, which stays active",
        fix="{suggestion}",
        summary=(
            "While a module of the guarded model is in eval mode, its `forward` calls a functional "
            "mode-sensitive operation that is active anyway: `F.dropout` (and its variants) with "
            "the default `training=True`, `F.scaled_dot_product_attention` with `dropout_p > 0`, "
            "or `F.batch_norm(..., training=True)` with running statistics."
        ),
        why=(
            "The functional forms do not follow the module's mode: `F.dropout(x, 0.5)` drops units "
            "after `model.eval()` just as before, so evaluation is random (claim C5) and scaled "
            "by `1/(1-p)`. Modules from `torch.nn` pass `self.training` themselves; custom code "
            "has to do the same."
        ),
        wrong="""
class Block(nn.Module):
    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)           # training=True by default
""",
        right="""
class Block(nn.Module):
    def forward(self, x):
        return F.dropout(self.fc(x), 0.5, training=self.training)

# attention: dropout_p=self.p if self.training else 0.0
""",
        known_problems=(
            "To stay cheap the interception runs in the first forward after every change of the "
            "model's modes and in every 64th forward: a call that depends on the data (taken only "
            "for some batches) can be missed; pass `tracing=\"always\"` to intercept every forward. "
            "Calls made by `torch.nn`'s own modules are never reported: they pass their mode "
            "explicitly."
        ),
        claims=("C5", "C7"),
        related=("TE214",),
    ),
    Rule(
        code="TE104",
        name="unregistered-mode-sensitive-module",
        severity=Severity.WARNING,
        message=(
            "`{module}` ({type}, {mode}) runs {child}, which is not a registered submodule and is in "
            "{child_mode} mode: `model.train()`/`model.eval()` never reach it"
        ),
        fix=(
            "create it in `__init__` and assign it as an attribute (or hold it in `nn.ModuleList`/"
            "`nn.ModuleDict` instead of a plain list or dict)"
        ),
        summary=(
            "A Dropout, BatchNorm or other mode-sensitive module runs inside the guarded model's "
            "forward without being one of its registered submodules — built inside `forward`, or "
            "kept in a plain Python list or dict — and its mode differs from the module that "
            "calls it."
        ),
        why=(
            "`train()`/`eval()` only walk registered submodules. A `nn.Dropout(0.5)` built in "
            "`forward` is always in training mode, so it keeps dropping after `model.eval()`; a "
            "BatchNorm in a plain list keeps using batch statistics in evaluation and its running "
            "statistics are missing from `state_dict`, `.to(device)` and the optimizer."
        ),
        wrong="""
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.norms = [nn.BatchNorm1d(64)]          # plain list: not registered
    def forward(self, x):
        x = self.norms[0](x)
        return self.fc(nn.Dropout(0.5)(x))          # built in forward: always training
""",
        right="""
class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.norms = nn.ModuleList([nn.BatchNorm1d(64)])
        self.drop = nn.Dropout(0.5)
    def forward(self, x):
        return self.fc(self.drop(self.norms[0](x)))
""",
        known_problems=(
            "Seen only where the module tracing runs (see TE103's notes): the first forward after "
            "every change of modes, and every 64th forward. A whole separate model called "
            "inside `forward` (an EMA teacher kept out of the registry on purpose) is not "
            "reported, nor are modules called by an unregistered module."
        ),
        claims=("C1", "C8"),
        related=("TE201",),
    ),
    Rule(
        code="TE105",
        name="tiny-batchnorm-batch",
        severity=Severity.WARNING,
        message=(
            "`{module}` ({type}) normalises over {count} value(s) per channel (input shape {shape}), "
            "fewer than {minimum}: its batch statistics are noise{extra}"
        ),
        fix=(
            "use larger batches (`drop_last=True` drops a small last batch), freeze BatchNorm for "
            "small-batch fine-tuning with `te.freeze_batchnorm(model)`, or use SyncBatchNorm/GroupNorm"
        ),
        summary=(
            "A BatchNorm layer that uses batch statistics (training mode, or no running "
            "statistics) normalises over fewer values per channel than the threshold (16 by "
            "default: `te.guard(model, min_batchnorm_values=N)`). The count is the batch size times "
            "the spatial size, summed over processes for SyncBatchNorm."
        ),
        why=(
            "Mean and variance estimated from a handful of values are noise: the normalised output "
            "depends on which samples share the batch and the running statistics absorb that "
            "noise (claim C6: with batch size 1 the output is distorted badly). With a single "
            "value per channel PyTorch refuses to train (`Expected more than 1 value per channel "
            "when training`)."
        ),
        wrong="""
model = nn.Sequential(nn.Linear(32, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 2))
loader = DataLoader(data, batch_size=2)              # 2 values per channel
""",
        right="""
loader = DataLoader(data, batch_size=64, drop_last=True)
# or, when small batches are unavoidable:
te.freeze_batchnorm(model)                            # running statistics, frozen
""",
        known_problems=(
            "Convolutional BatchNorm counts batch × height × width, so a batch of 2 feature maps of "
            "8×8 is 128 values and is not reported even though the samples are few. Only "
            "BatchNorm layers registered in the guarded model are checked on every forward; "
            "unregistered ones only where the module tracing runs."
        ),
        claims=("C2", "C6"),
    ),
    Rule(
        code="TE106",
        name="eval-inside-training",
        severity=Severity.WARNING,
        message=(
            "{trigger} while `{module}` ({type}) is in eval mode inside training model `{model}`: "
            "{count} mode-sensitive module(s) ({examples}) do not train like the rest"
        ),
        fix=(
            "call `model.train()` on the whole model, or state the intent with "
            "`te.freeze_batchnorm(model.{module})` (survives `model.train()`)"
        ),
        summary=(
            "At a training step the guarded model is in training mode but some of its "
            "mode-sensitive modules are in eval mode, their parameters still train, and no "
            "traineval policy explains it."
        ),
        why=(
            "Part of the model then trains without dropout and with BatchNorm frozen at running "
            "statistics that no longer follow the changing weights. Sometimes intended, but then it "
            "should be stated with a policy; often a leftover: Hugging Face `from_pretrained` "
            "returns models in eval mode, and frameworks or helper functions flip submodules."
        ),
        wrong="""
model = Classifier(backbone=AutoModel.from_pretrained(name))   # backbone in eval
optimizer = torch.optim.AdamW(model.parameters())
model.head.train()                                              # only the head trains
""",
        right="""
model = Classifier(backbone=AutoModel.from_pretrained(name))
model.train()                                                   # every module
# or keep BatchNorm statistics fixed on purpose:
te.freeze_batchnorm(model.backbone)
""",
        known_problems=(
            "Subtrees whose parameters are all frozen (`requires_grad=False`, e.g. a frozen "
            "feature extractor for linear probing) are not reported: keeping them in eval is "
            "consistent. Reported once per eval subtree, at its top module."
        ),
        claims=("C1", "C8"),
        related=("TE102", "TE202"),
    ),
]

#: Rule families: one detection mechanism each (measured separately by the benchmark).
FAMILIES: dict[str, tuple[str, ...]] = {
    "modes": ("TE101", "TE102", "TE106"),
    "batchnorm": ("TE105",),
    "tracing": ("TE103", "TE104"),
}
