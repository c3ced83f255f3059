"""TE2xx — mode problems of a live model, found by ``te.describe`` (TE201–TE209) and by the
eval contract ``te.check`` (TE210 onwards)."""

from __future__ import annotations

from traineval.diagnostics import Rule, Severity

RULES: list[Rule] = [
    Rule(
        code="TE201",
        name="mixed-modes",
        severity=Severity.ERROR,
        message="`{module}` ({type}) is in training mode inside a model in eval mode",
        fix="call `model.eval()` on the whole model, or register `{module}` as a submodule",
        summary=(
            "A mode-sensitive module (BatchNorm, Dropout, …) is in training mode while the "
            "model that contains it is in eval mode, and no traineval policy (such as "
            "`te.mc_dropout`) explains it."
        ),
        why=(
            "Evaluation then runs with batch statistics or live dropout in that module: outputs "
            "change from call to call (claim C5), depend on the other samples in the batch "
            "(C6), and BatchNorm running statistics are overwritten by test data (C4). The usual "
            "causes are a `train()` call on a submodule after `model.eval()`, a `training` flag "
            "set by hand, or a `train()` override that does not reach every child."
        ),
        wrong="""
model.eval()
model.head.train()          # e.g. left over from fine-tuning the head
preds = model(x)            # head's dropout is still active
""",
        right="""
model.eval()                # every module, head included, in eval
preds = model(x)

# or, to keep dropout on deliberately (Monte-Carlo dropout):
with te.mc_dropout(model):
    samples = [model(x) for _ in range(10)]
""",
        claims=("C1", "C3", "C5"),
        related=("TE202",),
    ),
    Rule(
        code="TE202",
        name="eval-inside-training",
        severity=Severity.WARNING,
        message="`{module}` ({type}) is in eval mode inside a model in training mode",
        fix="call `model.train()`, or freeze it explicitly with `te.freeze_batchnorm(model)`",
        summary=(
            "A mode-sensitive module is in eval mode while the model that contains it trains, "
            "and no traineval policy (such as `te.freeze_batchnorm`) explains it."
        ),
        why=(
            "That module's dropout is off and its BatchNorm neither uses batch statistics nor "
            "updates its running statistics while the rest of the model trains. Sometimes this "
            "is wanted (frozen BatchNorm when fine-tuning), but then it should be stated; more "
            "often it is a leftover — a model loaded with `from_pretrained` (which returns eval "
            "mode) or a framework that flipped a submodule."
        ),
        wrong="""
model.train()
model.backbone.eval()       # meant to freeze BatchNorm, but also turns dropout off,
                            # and the next model.train() silently undoes it
""",
        right="""
policy = te.freeze_batchnorm(model.backbone)   # survives model.train(); policy.undo()
model.train()
""",
        claims=("C1", "C8"),
        related=("TE201",),
    ),
    Rule(
        code="TE203",
        name="policy-overridden",
        severity=Severity.WARNING,
        message="`{module}` ({type}) is pinned to {pinned} mode by a policy but its flag says {actual}",
        fix="do not assign `.training` by hand on modules under a policy; undo the policy instead",
        summary=(
            "A module under a traineval policy (`te.freeze_batchnorm`, `te.mc_dropout`) has a "
            "`training` flag that disagrees with the policy, because the flag was assigned "
            "directly instead of through `train()`/`eval()`."
        ),
        why=(
            "Policies work through the module's `train()` method, so they survive "
            "`model.train()` and `model.eval()`; assigning `module.training = ...` bypasses "
            "them and the policy no longer holds."
        ),
        wrong="""
te.freeze_batchnorm(model)
model.bn1.training = True    # the frozen BatchNorm trains again
""",
        right="""
policy = te.freeze_batchnorm(model)
...
policy.undo()                # when BatchNorm should train again
""",
        related=("TE202",),
    ),
    Rule(
        code="TE204",
        name="unknown-sensitivity",
        severity=Severity.INFO,
        message="cannot tell whether `{module}` ({type}) depends on the mode: {reason}",
        fix="check its forward by hand, or test the model with `te.check(model, example)`",
        summary=(
            "traineval decides whether a custom module depends on the mode by reading the "
            "source of its `forward` (and the methods it calls) for `self.training`. When the "
            "source is unavailable (a class defined in a REPL, a compiled or scripted module) "
            "the module is reported as *unknown* rather than guessed."
        ),
        why=(
            "An undetected mode-sensitive module could hide any of the bugs in this catalog; "
            "the eval contract (`te.check`) tests the behaviour instead of reading source."
        ),
        wrong="""
exec("class Block(nn.Module): ...")   # no source file: traineval cannot read forward
""",
        right="""
# define the class in a module file, or check the behaviour:
te.assert_eval_contract(model, example)
""",
    ),
    # ------------------------------------------------------------------ te.check (TE210+)
    Rule(
        code="TE210",
        name="eval-nondeterministic",
        severity=Severity.ERROR,
        message=(
            "eval outputs differ between two forwards of the same batch (`{path}`, max |Δ| = {delta}); "
            "randomness enters at `{module}` ({type}): {reason}"
        ),
        fix="make `{module}` follow the mode: use nn.Dropout modules, pass `training=self.training`, and draw "
        "random numbers only `if self.training`",
        summary=(
            "`te.check` ran the model twice in eval mode on the same batch with different global RNG seeds "
            "(torch, `random`, NumPy) and the outputs differ beyond the tolerance. The module named is the "
            "first, in execution order, whose inputs agree and whose outputs do not."
        ),
        why=(
            "In eval mode the same input must give the same output (claim C5). Random eval outputs make "
            "metrics noisy and irreproducible. Usual causes: a dropout module that `model.eval()` did not "
            "reach (see TE213), a functional `F.dropout(x, p)` whose `training` defaults to True (TE214), or "
            "noise added in `forward` without an `if self.training:` guard."
        ),
        wrong="""
class Block(nn.Module):
    def forward(self, x):
        x = self.fc(x)
        return x + 0.1 * torch.randn_like(x)     # noise in eval too
""",
        right="""
class Block(nn.Module):
    def forward(self, x):
        x = self.fc(x)
        if self.training:
            x = x + 0.1 * torch.randn_like(x)
        return x
""",
        known_problems=(
            "Only the first module where randomness enters is named; fix it and re-check to find the next. "
            "Nondeterministic GPU kernels (atomic adds) give tiny differences that the tolerance absorbs; "
            "raise `atol` if they do not. Deliberate randomness under `te.mc_dropout` is reported as TE217."
        ),
        claims=("C5",),
        related=("TE213", "TE214", "TE201"),
    ),
    Rule(
        code="TE211",
        name="eval-batch-dependent",
        severity=Severity.ERROR,
        message=(
            "a sample's output `{path}` depends on the rest of its batch ({how}); it starts at `{module}` "
            "({type}): {reason}"
        ),
        fix="make `{module}` work per sample in eval: let model.eval() reach it (register it), keep "
        "track_running_stats=True, or compute its statistics per sample",
        summary=(
            "`te.check` ran some samples alone, inside the example batch and inside a reordered batch, in eval "
            "mode, and a sample's output changed. Forward hooks compare every module's per-sample inputs and "
            "outputs across those runs; the module named is the first, in execution order, whose inputs "
            "still agree and whose outputs do not."
        ),
        why=(
            "In eval mode a prediction must not depend on which other samples share the batch (claim C6): "
            "accuracy then changes with the batch size and batch-of-one inference (serving) breaks, as the "
            "article's wrongly coloured images show. Usual causes: a BatchNorm in training mode (held in a "
            "plain list, built in `forward`, or switched back), a BatchNorm with "
            "`track_running_stats=False`, a statistic over the batch dimension in custom code "
            "(`x - x.mean(0)`), or an attention/RNN layer whose `batch_first` does not match the input."
        ),
        wrong="""
class Center(nn.Module):
    def forward(self, x):
        return x - x.mean(0)            # mean over the batch: depends on the other samples
""",
        right="""
class Center(nn.Module):
    def forward(self, x):
        return x - x.mean(-1, keepdim=True)   # per-sample statistic
""",
        known_problems=(
            "Only output leaves whose shape grows with the batch are compared (a batch-mean loss is not). "
            "Models that pad to the longest sample of the batch give outputs of other shapes and are not "
            "compared. Only intermediate tensors with a batch dimension are used to find the module."
        ),
        claims=("C6", "C3"),
        related=("TE213", "TE201"),
    ),
    Rule(
        code="TE212",
        name="eval-changes-state",
        severity=Severity.ERROR,
        message="eval forwards changed `{module}` ({type}): {changed} — {reason}",
        fix="evaluate under `model.eval()` (or `with te.evaluating(model):`) and keep `{module}` from writing "
        "its own state in forward",
        summary=(
            "After the eval forwards of `te.check`, a parameter or buffer is not bit-identical to what it was "
            "before (`te.check` then puts it back). Modules outside the model's registry that ran (held in a "
            "plain list) are checked too."
        ),
        why=(
            "Feeding test data must not change a model (claim C4). A BatchNorm in training mode overwrites "
            "its running statistics with test-set statistics, so the next evaluation — and the checkpoint — "
            "differ from the trained model."
        ),
        wrong="""
model.train()
for x, y in test_loader:          # BatchNorm running statistics drift towards the test set
    acc += (model(x).argmax(1) == y).sum()
""",
        right="""
with te.inference(model):         # eval mode + no autograd; modes restored afterwards
    for x, y in test_loader:
        acc += (model(x).argmax(1) == y).sum()
""",
        claims=("C4",),
        related=("TE213", "TE201"),
    ),
    Rule(
        code="TE213",
        name="eval-mode-not-reached",
        severity=Severity.ERROR,
        message="`{module}` ({type}) {behaviour}: {reason}",
        fix="register `{module}` (an attribute of a module, nn.ModuleList or nn.ModuleDict) and create it in "
        "__init__, so that model.eval() reaches it",
        summary=(
            "After `model.eval()`, a mode-sensitive module (BatchNorm, Dropout, a custom module reading "
            "`self.training`, …) ran in training mode during the forward. Global forward hooks see every "
            "module that runs, including modules that are not registered children: held in a plain Python "
            "list or dict, or built inside `forward` (`nn.Dropout(0.5)(x)`)."
        ),
        why=(
            "`model.eval()` only reaches registered submodules, and a module created in `forward` starts in "
            "training mode on every call. Such a module keeps dropping units or normalising with batch "
            "statistics at test time (claims C3, C5, C6) while `te.describe` and the model's own flags say "
            "everything is in eval."
        ),
        wrong="""
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = [nn.Linear(8, 8), nn.BatchNorm1d(8)]   # plain list: not registered
    def forward(self, x):
        x = nn.Dropout(0.5)(x)                               # new module, training mode
        return self.blocks[1](self.blocks[0](x))
""",
        right="""
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.BatchNorm1d(8)])
        self.drop = nn.Dropout(0.5)
    def forward(self, x):
        return self.blocks[1](self.blocks[0](self.drop(x)))
""",
        known_problems=(
            "A module kept in training mode on purpose under `te.mc_dropout` is reported as TE217 (info). "
            "Custom modules whose source cannot be read are not judged here; the behavioural checks "
            "(TE210, TE211) still apply to them."
        ),
        claims=("C1", "C3", "C8"),
        related=("TE201", "TE210", "TE211", "TE212"),
    ),
    Rule(
        code="TE214",
        name="eval-functional-dropout",
        severity=Severity.ERROR,
        message="`{module}` ({type}) calls {call} with {detail} while in eval mode",
        fix="pass `training=self.training` (or `dropout_p=self.p if self.training else 0.0`), or use the "
        "nn.Dropout module",
        summary=(
            "During an eval forward, a functional mode-sensitive call was active: `F.dropout*`, "
            "`F.alpha_dropout`, `F.feature_alpha_dropout`, `F.scaled_dot_product_attention` with "
            "`dropout_p > 0`, `F.batch_norm(training=True)` or `F.rrelu(training=True)`. The calls are "
            "intercepted with a `torch.overrides.TorchFunctionMode` and attributed to the module whose "
            "forward made them."
        ),
        why=(
            "Functional forms do not follow the module's mode: `F.dropout(x, 0.5)` has `training=True` by "
            "default and stays active after `model.eval()`, and a custom attention passing "
            "`dropout_p=self.dropout` to `scaled_dot_product_attention` drops attention weights at test time."
        ),
        wrong="""
def forward(self, x):
    return F.dropout(self.fc(x), p=0.3)                  # training=True by default
""",
        right="""
def forward(self, x):
    return F.dropout(self.fc(x), p=0.3, training=self.training)
""",
        known_problems=(
            "Calls made by torch's own modules are not reported (they follow the mode by construction). A "
            "call whose caller is itself in training mode and reads `self.training` is reported as TE213 on "
            "the caller instead."
        ),
        claims=("C5", "C7"),
        related=("TE103", "TE210", "TE213"),
    ),
    Rule(
        code="TE215",
        name="batchnorm-statistics-gap",
        severity=Severity.WARNING,
        message="`{module}` ({type}): running statistics far from the example batch's — {gap}",
        fix="recompute population statistics with `te.recalibrate_batchnorm(model, train_loader)`, then re-check",
        summary=(
            "For each BatchNorm in eval mode, `te.check` compares its running statistics with the statistics "
            "of its input on the example batch, per channel: the mean shift `|batch mean - running mean| / "
            "running std` (root-mean-square over channels) and the scale gap `exp(rms |log(batch std / "
            "running std)|)`. A layer is flagged when the mean shift exceeds `gap_threshold` (default 1.0 "
            "std), when the scale gap exceeds 2, or when its running statistics were never updated "
            "(`num_batches_tracked == 0`, mean 0, variance 1). To stay clear of sampling noise, a gap must "
            "also exceed 4 standard errors of the batch estimate (`4/sqrt(m)` for the mean shift and "
            "`4/sqrt(2m)` for the log scale, with m values per channel)."
        ),
        why=(
            "In eval mode BatchNorm normalises with its running statistics, an exponential moving average "
            "of training batches (not the statistics of the whole training data — see the note on claim "
            "C3). Statistics that are stale — from before fine-tuning, from a few batches, after weights "
            "were averaged or loaded from another model — shift every activation, and eval accuracy drops "
            "although training accuracy is fine. Population statistics recomputed over the training data fix "
            "it (Wu & Johnson, 'Rethinking \"Batch\" in BatchNorm', 2021, section 3)."
        ),
        wrong="""
model.load_state_dict(swa_weights)     # averaged weights, running statistics of another model
evaluate(model)
""",
        right="""
model.load_state_dict(swa_weights)
te.recalibrate_batchnorm(model, train_loader)     # population statistics
evaluate(model)
""",
        known_problems=(
            "The example batch must come from the data the model is evaluated on: with random inputs "
            "(`traineval check --input-shape`) the gap is meaningless and is not measured. A legitimate shift "
            "between training and test data also widens the gap. This is a warning, never an error."
        ),
        claims=("C3",),
        references=("fvcore `precise_bn.update_bn_stats`; Wu & Johnson 2021, arXiv:2105.07576",),
        related=("TE212",),
    ),
    Rule(
        code="TE216",
        name="training-mode-inert",
        severity=Severity.WARNING,
        message="`{module}` ({type}) {behaviour}: {reason}",
        fix="let model.train() reach `{module}` (remove the eval() call or the train() override), or state "
        "the intent with `te.freeze_batchnorm(...)`",
        summary=(
            "`te.check` ran the model after `model.train()` and a Dropout or BatchNorm did not train: it ran "
            "in eval mode, or a BatchNorm's running statistics did not move (`momentum=0`)."
        ),
        why=(
            "`model.train()` before training (claim C1) only helps if it reaches every mode-sensitive module. "
            "A `train()` override that does not pass the mode on, or an `eval()` call inside `forward`, "
            "silently turns off dropout's regularisation (C7) or freezes BatchNorm's statistics (C2). When "
            "freezing is intended, `te.freeze_batchnorm` says so and is reported as TE217 instead."
        ),
        wrong="""
class Net(nn.Module):
    def train(self, mode=True):
        self.training = mode          # children are never switched
        return self
""",
        right="""
class Net(nn.Module):
    def train(self, mode=True):
        super().train(mode)           # reaches every child
        return self
""",
        claims=("C1", "C2", "C7"),
        related=("TE202", "TE217"),
    ),
    Rule(
        code="TE217",
        name="policy-explains-mode",
        severity=Severity.INFO,
        message="`{module}` ({type}) {behaviour}, as a traineval policy says: {reason}",
        fix="nothing to do; undo the policy when it is no longer wanted",
        summary=(
            "A mode behaviour that `te.check` would otherwise report (random eval outputs, a module in "
            "training mode during eval, or a BatchNorm that stays in eval during training) comes from a "
            "traineval policy: `te.mc_dropout` keeps dropout live, `te.freeze_batchnorm` keeps BatchNorm in eval."
        ),
        why="The behaviour is intended and stated, so it is reported for information only.",
        wrong="""
model.backbone.eval()        # unstated: reported as TE216
""",
        right="""
te.freeze_batchnorm(model.backbone)    # stated: reported as TE217 (info)
""",
        related=("TE210", "TE213", "TE216"),
    ),
]
