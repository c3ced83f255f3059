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
]
