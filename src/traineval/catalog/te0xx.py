"""TE0xx — mode bugs found in source by ``traineval lint`` (see :mod:`traineval.lint`).

TE001–TE013 are on by default; TE08x are opinionated or low-confidence variants and are
off by default (``--extend-select TE081``); TE090 reports unused ``# noqa`` codes (off by
default, like ruff's RUF100); TE099 is a file the linter could not read or parse.
"""

from __future__ import annotations

from traineval.diagnostics import Rule, Severity

_PYTORCH_26338 = "PyTorch issue #26338: `F.dropout` in `forward` stays active after `model.eval()`"
_MODULE_TRAIN = "PyTorch docs: `torch.nn.Module.train` / `eval` (recursive over children)"

RULES: list[Rule] = [
    Rule(
        code="TE001",
        name="mode-method-not-called",
        severity=Severity.ERROR,
        message="`{expr}` is referenced but not called: the mode does not change",
        fix="call it: `{expr}()`",
        summary="A statement `model.eval` or `model.train` without parentheses.",
        why=(
            "`model.eval` only looks the method up; nothing runs, so the model stays in the mode it "
            "was in — usually training mode, with Dropout active and BatchNorm updating its running "
            "statistics on test data (claims C4, C5). Generic linters at best call this a useless "
            "expression."
        ),
        wrong="""
model.eval
with torch.no_grad():
    preds = model(x)
""",
        right="""
model.eval()
with torch.no_grad():
    preds = model(x)
""",
        claims=("C1", "C4", "C5"),
        related=("TE007",),
        fixable=True,
    ),
    Rule(
        code="TE002",
        name="functional-dropout-ignores-mode",
        severity=Severity.ERROR,
        message="`{func}(...)` {problem}: dropout stays active after `model.eval()`",
        fix="pass `{keyword}=self.training` so that dropout follows the module's mode",
        summary=(
            "A functional dropout call (`F.dropout`, `F.dropout1d/2d/3d`, `F.alpha_dropout`, "
            "`torch.dropout`, …) inside an `nn.Module` method whose `training` argument is missing "
            "(it defaults to `True` for `F.dropout*`) or hard-coded `True` anywhere. A positional "
            "`training` argument, `training=self.training and self.mc`, a rate gated on "
            "`self.training`, or a call inside `if self.training:` are fine."
        ),
        why=(
            "Unlike `nn.Dropout`, the functional form does not know about the module: "
            "`F.dropout(x, 0.5)` drops half the units on every call, in evaluation too, so the model's "
            "outputs stay random after `model.eval()` (claim C5). This is PyTorch issue #26338, open "
            "since 2019."
        ),
        wrong="""
class Net(nn.Module):
    def forward(self, x):
        return F.dropout(self.fc(x), p=0.5)
""",
        right="""
class Net(nn.Module):
    def forward(self, x):
        return F.dropout(self.fc(x), p=0.5, training=self.training)
""",
        known_problems=(
            "A rate or flag handed in by the caller (a parameter of the function) is trusted: the "
            "caller is expected to gate it. Functions outside a class are only checked for a "
            "hard-coded `True`."
        ),
        claims=("C5", "C7"),
        references=(_PYTORCH_26338,),
        related=("TE003", "TE013"),
        fixable=True,
    ),
    Rule(
        code="TE003",
        name="attention-dropout-ignores-mode",
        severity=Severity.ERROR,
        message="`{func}(..., dropout_p={rate})` applies attention dropout in eval mode too",
        fix="gate the rate on the mode: `dropout_p={rate} if self.training else 0.0`",
        summary=(
            "`F.scaled_dot_product_attention` called with a non-zero `dropout_p` that is not gated on "
            "`self.training` (or handed in by the caller)."
        ),
        why=(
            "`scaled_dot_product_attention` has no `training` argument: whatever `dropout_p` it gets, "
            "it applies — also after `model.eval()`, so attention weights are dropped at test time "
            "and outputs become random (claim C5)."
        ),
        wrong="""
out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_p)
""",
        right="""
out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_p if self.training else 0.0)
""",
        claims=("C5",),
        related=("TE002",),
        fixable=True,
    ),
    Rule(
        code="TE004",
        name="layer-built-in-forward",
        severity=Severity.ERROR,
        message="`{expr}` builds a new {layer} on every call: it is always in training mode",
        fix="create the layer once in `__init__` (`self.drop = nn.{layer}(...)`) and call it in `forward`",
        summary=(
            "A mode-sensitive layer (`nn.Dropout*`, `nn.BatchNorm*`, `nn.RReLU`, a tracked "
            "`InstanceNorm`, attention/recurrent layers with dropout) constructed inside `forward`."
        ),
        why=(
            "A module made inside `forward` is new on every call and is never a child of the model: "
            "`model.eval()` cannot reach it, so it is always in training mode — dropout stays on at "
            "test time, BatchNorm always normalises with the batch's statistics and throws its "
            "running statistics away (claims C2, C5, C6)."
        ),
        wrong="""
def forward(self, x):
    return nn.Dropout(0.5)(self.fc(x))
""",
        right="""
def __init__(self):
    super().__init__()
    self.fc = nn.Linear(8, 8)
    self.drop = nn.Dropout(0.5)

def forward(self, x):
    return self.drop(self.fc(x))
""",
        known_problems="Layers assigned to `self` inside `forward` (lazy creation) are not reported.",
        claims=("C2", "C5", "C6"),
        related=("TE005", "TE201"),
    ),
    Rule(
        code="TE005",
        name="modules-in-plain-container",
        severity=Severity.ERROR,
        message=(
            "submodules kept in a plain {kind} `self.{attr}`: `eval()`, `.to()` and `parameters()` never reach "
            "them"
        ),
        fix="use `{container}` instead of a plain {kind}",
        summary=(
            "An `nn.Module` attribute that holds submodules in a plain Python list, tuple or dict "
            "(literal, comprehension, or `.append` of modules to an empty list)."
        ),
        why=(
            "PyTorch registers a submodule only when it is assigned directly or held by "
            "`nn.ModuleList`/`nn.ModuleDict`/`nn.Sequential`. Modules in a plain list are invisible: "
            "`model.eval()` leaves their Dropout and BatchNorm in training mode, `model.to(device)` "
            "leaves them on the CPU, and the optimizer never sees their parameters."
        ),
        wrong="""
self.blocks = [nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1)) for _ in range(4)]
""",
        right="""
self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1)) for _ in range(4))
""",
        known_problems=(
            "Classes that register elements one by one (`add_module`, `setattr`) are skipped. No "
            "autofix: wrapping in `nn.ModuleList` changes the `state_dict` keys."
        ),
        claims=("C8",),
        related=("TE004", "TE201"),
    ),
    Rule(
        code="TE006",
        name="training-flag-assigned",
        severity=Severity.WARNING,
        message="`{target} = ...` changes this one flag and none of its children",
        fix="call `{call}`, which recurses into every submodule",
        summary=(
            "A direct assignment to a module's `training` attribute, outside a class's own "
            "`train()`/`eval()` override, a loop over `model.modules()` or a function passed to "
            "`model.apply()`."
        ),
        why=(
            "`train()` and `eval()` set the flag on the module and every descendant (and honour "
            "overrides and traineval policies); assigning `.training` changes one module only, so its "
            "Dropout and BatchNorm children keep the other mode — a mixed-mode model."
        ),
        wrong="""
model.training = False
preds = model(x)          # children still in training mode
""",
        right="""
model.eval()
preds = model(x)
""",
        related=("TE201", "TE203"),
    ),
    Rule(
        code="TE007",
        name="inference-without-eval",
        severity=Severity.ERROR,
        message="`{model}` runs a forward {why} while in training mode{caller}",
        fix="call `{model}.eval()` first (or use `with te.inference({model}):`)",
        summary=(
            "A model's forward (`model(x)`, `.forward`, `.generate`, `.predict`) under "
            "`torch.no_grad()`/`inference_mode()` (block or decorator), or after "
            "`load_state_dict(...)`, when the model is known to be in training mode: built in this "
            "scope, or `train()` called, with no `eval()`/`train(False)` on the way. Calls are "
            "followed across functions and files: a helper that runs the forward is reported when a "
            "caller — up to six calls away — hands it a model in training mode, and is silent when "
            "every caller sets `eval()` first. Models from `from_pretrained` are in eval mode."
        ),
        why=(
            "`no_grad` and `inference_mode` only switch off gradient tracking; they do not change "
            "the mode. Without `eval()`, Dropout stays random and BatchNorm normalises with the test "
            "batch and overwrites its running statistics (claims C4–C6)."
        ),
        wrong="""
model = Net()
model.load_state_dict(torch.load("ckpt.pt"))
with torch.no_grad():
    preds = model(x)
""",
        right="""
model = Net()
model.load_state_dict(torch.load("ckpt.pt"))
model.eval()
with torch.no_grad():
    preds = model(x)
""",
        known_problems=(
            "A model whose origin the linter cannot see (a parameter of a function nobody in the "
            "project calls, a model from `torch.load`) is not reported; TE081 (off by default) "
            "reports forwards of model-like parameters under `no_grad` in functions no project "
            "code calls. Branches count as taken: an `eval()` in any branch before the forward "
            "silences the rule."
        ),
        claims=("C1", "C4", "C5", "C6"),
        references=("SonarSource rule S6982 (eval after load_state_dict)",),
        related=("TE001", "TE008", "TE081"),
    ),
    Rule(
        code="TE008",
        name="training-after-eval",
        severity=Severity.ERROR,
        message=(
            "`{model}` is put in eval mode here{how} and the loop takes its next training step without "
            "`{model}.train()`"
        ),
        fix="call `{model}.train()` at the start of each epoch/step, or evaluate under `with te.evaluating({model}):`",
        summary=(
            "A loop whose body takes a training step (`backward()`/`optimizer.step()`) and also puts "
            "the trained model in eval mode — directly or through a called function in any file of "
            "the project — with no `train()` before its next step."
        ),
        why=(
            "After a validation helper calls `model.eval()`, every following training step runs with "
            "Dropout off and BatchNorm frozen on stale running statistics: the model silently trains "
            "differently from the first epoch on (claim C8)."
        ),
        wrong="""
model.train()
for epoch in range(epochs):
    for x, y in loader:
        loss_fn(model(x), y).backward()
        opt.step()
    validate(model)          # calls model.eval() and never switches back
""",
        right="""
for epoch in range(epochs):
    model.train()
    for x, y in loader:
        loss_fn(model(x), y).backward()
        opt.step()
    validate(model)
""",
        known_problems="Only models whose forward runs (outside `no_grad`) in the loop count as trained.",
        claims=("C1", "C8"),
        related=("TE007", "TE009", "TE202"),
    ),
    Rule(
        code="TE009",
        name="train-in-evaluation",
        severity=Severity.ERROR,
        message="`{model}.train()` {context} puts the model in training mode before its forward",
        fix=(
            "call `{model}.eval()` in evaluation routines (restore with `train()` after the loop, or use "
            "`te.evaluating`)"
        ),
        summary=(
            "`model.train()` inside an evaluation routine — under `no_grad`/`inference_mode`, or in a "
            "function named like `validate`/`evaluate`/`predict`/`infer` — followed by a forward of "
            "that model. Restoring the mode after the evaluation loop, and Monte-Carlo dropout "
            "routines (named `mc_*`, `*_dropout`, `*_uncertainty`), are fine."
        ),
        why=(
            "The evaluation then runs in training mode: Dropout is random, BatchNorm uses the "
            "statistics of each evaluation batch and overwrites the running statistics (claims C4–C6)."
        ),
        wrong="""
def evaluate(model, loader):
    model.train()            # copied from the training function
    with torch.no_grad():
        return [model(x) for x, _ in loader]
""",
        right="""
def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return [model(x) for x, _ in loader]
""",
        claims=("C4", "C5", "C6"),
        related=("TE007", "TE008"),
    ),
    Rule(
        code="TE010",
        name="trace-in-training-mode",
        severity=Severity.ERROR,
        message="`{tracer}({model}, ...)` records `{model}` in training mode{caller}",
        fix="call `{model}.eval()` before tracing or exporting",
        summary=(
            "`torch.jit.trace`, `torch.export.export`, `torch.fx.symbolic_trace` (and "
            "`torch.onnx.export` with `training=TrainingMode.TRAINING/PRESERVE`) of a model known to "
            "be in training mode."
        ),
        why=(
            "Tracing and export record the operations that run — or the value of `self.training` "
            "— at trace time. A model traced in training mode keeps dropout active and BatchNorm on "
            "batch statistics in the exported graph, whatever mode it is used in later."
        ),
        wrong="""
model = Net()
traced = torch.jit.trace(model, example)
""",
        right="""
model = Net().eval()
traced = torch.jit.trace(model, example)
""",
        known_problems=(
            "`torch.onnx.export` exports in eval mode by default and is only checked when `training=` "
            "says otherwise."
        ),
        claims=("C1",),
        related=("TE007",),
    ),
    Rule(
        code="TE011",
        name="requires-grad-freeze-keeps-stats",
        severity=Severity.WARNING,
        message=(
            "`{part}` is frozen with `requires_grad=False` only: its BatchNorm running statistics keep updating "
            "while training goes on"
        ),
        fix=(
            "also freeze the statistics: `te.freeze_batchnorm({part})` (survives `model.train()`), or call "
            "`{part}.eval()` after every `model.train()`"
        ),
        summary=(
            "Parameters of a part that holds BatchNorm are frozen (`requires_grad_(False)` or "
            "`p.requires_grad = False` over its parameters) while training continues, and nothing "
            "puts that part's BatchNorm in eval mode."
        ),
        why=(
            "`requires_grad=False` stops gradient updates of the weights only. In training mode "
            "BatchNorm still normalises with batch statistics and overwrites its running mean and "
            "variance on every batch, so the 'frozen' part drifts (claims C2, C4)."
        ),
        wrong="""
model = ResNet()
model.backbone.requires_grad_(False)
model.train()
for x, y in loader: ...
""",
        right="""
model = ResNet()
model.backbone.requires_grad_(False)
te.freeze_batchnorm(model.backbone)      # survives model.train()
model.train()
for x, y in loader: ...
""",
        known_problems=(
            "Reported only when the part visibly holds BatchNorm (a project class that builds one, "
            "or a torchvision/timm CNN); TE082 (off by default) reports the other cases."
        ),
        claims=("C2", "C4"),
        related=("TE082", "TE202"),
    ),
    Rule(
        code="TE012",
        name="train-override-skips-children",
        severity=Severity.WARNING,
        message="`{cls}.{method}()` neither calls `super().{method}(...)` nor reaches the children",
        fix="call `super().train(mode)` (and return `self`), then apply your own changes",
        summary=(
            "A `train(self, mode=True)` or `eval(self)` override in an `nn.Module` subclass that "
            "does not call `super()` and does not loop over `self.children()`/`self.modules()`."
        ),
        why=(
            "`nn.Module.train` is what sets the mode of every descendant. An override that skips it "
            "changes (at most) its own flag: `model.eval()` then leaves Dropout and BatchNorm below "
            "in training mode — a mixed-mode model at test time."
        ),
        wrong="""
def train(self, mode=True):
    self.training = mode
    return self
""",
        right="""
def train(self, mode=True):
    super().train(mode)
    self.backbone.eval()     # e.g. keep a frozen backbone in eval
    return self
""",
        related=("TE013", "TE201"),
    ),
    Rule(
        code="TE013",
        name="homemade-mode-flag",
        severity=Severity.WARNING,
        message="`{flag}` gates dropout or normalisation in `{cls}.forward` but never follows `self.training`",
        fix="use `self.training` (set by `train()`/`eval()`), or set `{flag}` from it in a `train()` override",
        summary=(
            "A home-made flag such as `self.is_training`, `self.train_mode` or `self.mode == 'train'` "
            "decides in `forward` whether dropout or normalisation runs, and no assignment, property "
            "or `train()` override ties it to `self.training`."
        ),
        why=(
            "`model.eval()` and `model.train()` only set `self.training`; a separate flag has to be "
            "switched by hand everywhere, and forgetting it once leaves dropout active at test time "
            "or off while training."
        ),
        wrong="""
def __init__(self):
    super().__init__()
    self.is_training = True

def forward(self, x):
    return F.dropout(x, 0.5, training=self.is_training)
""",
        right="""
def forward(self, x):
    return F.dropout(x, 0.5, training=self.training)
""",
        known_problems="Flags set only outside the class (e.g. by a base class in another file) are not reported.",
        related=("TE002", "TE012"),
    ),
    Rule(
        code="TE081",
        name="inference-without-eval-unverified",
        severity=Severity.INFO,
        message="`{model}` runs a forward under `torch.no_grad()` and nothing here puts it in eval mode",
        fix="call `{model}.eval()` in the function, or document that callers must",
        summary=(
            "Opinionated variant of TE007: a forward of a model-like parameter (named `model`, "
            "`net`, … or used as a module) under `no_grad` in a function that no linted code calls, "
            "so the mode of the model it receives cannot be checked."
        ),
        why=(
            "Public helpers such as `predict(model, x)` are safest when they call `model.eval()` "
            "themselves (or use `te.inference(model)`), instead of trusting every caller."
        ),
        wrong="""
def predict(model, x):
    with torch.no_grad():
        return model(x)
""",
        right="""
def predict(model, x):
    with te.inference(model):
        return model(x)
""",
        related=("TE007",),
        default_enabled=False,
    ),
    Rule(
        code="TE082",
        name="requires-grad-freeze-unverified",
        severity=Severity.INFO,
        message=(
            "`{part}` is frozen with `requires_grad=False` only: if it holds BatchNorm, its running statistics "
            "keep updating"
        ),
        fix=(
            "if `{part}` holds BatchNorm, also use `te.freeze_batchnorm({part})` or call `{part}.eval()` after "
            "`model.train()`"
        ),
        summary="Opinionated variant of TE011 for parts whose contents the linter cannot see.",
        why="See TE011: `requires_grad=False` does not stop BatchNorm from updating its statistics.",
        wrong="""
model.encoder.requires_grad_(False)
train(model)
""",
        right="""
model.encoder.requires_grad_(False)
te.freeze_batchnorm(model.encoder)
train(model)
""",
        related=("TE011",),
        default_enabled=False,
    ),
    Rule(
        code="TE090",
        name="unused-noqa",
        severity=Severity.WARNING,
        message="unused `noqa` code: {codes}",
        fix="remove the unused code from the comment",
        summary="A `# noqa: TE0xx` comment names a code that no finding on that line has.",
        why="Stale suppressions hide the next real finding on that line.",
        wrong="""
model.eval()  # noqa: TE001
""",
        right="""
model.eval()
""",
        default_enabled=False,
        fixable=True,
    ),
    Rule(
        code="TE099",
        name="syntax-error",
        severity=Severity.ERROR,
        message="cannot lint this file: {error}",
        fix="fix the syntax error (or exclude the file)",
        summary="A file the linter cannot read, decode or parse.",
        why="Nothing in it can be checked; a file that does not parse is reported instead of crashing the run.",
        wrong="""
def forward(self, x)
    return x
""",
        right="""
def forward(self, x):
    return x
""",
    ),
]
