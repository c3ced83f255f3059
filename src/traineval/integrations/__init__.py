"""Callbacks for the frameworks people train with: Lightning and the Hugging Face ``Trainer``.

Each framework gets the same three callbacks, in its own module so that importing traineval
never imports a framework:

* ``PreciseBatchNorm`` — population BatchNorm statistics before each validation/evaluation
  and at the end of training (``te.recalibrate_batchnorm``);
* ``ModeGuard`` — the runtime guard (``te.guard``) over the model while the framework runs it;
* ``EvalContract`` — the eval contract (``te.check``) once at the start, failing fast.

>>> import traineval.integrations          # imports no framework
>>> # from traineval.integrations.lightning import PreciseBatchNorm      # extra: traineval[lightning]
>>> # from traineval.integrations.transformers import ModeGuard          # extra: traineval[transformers]
"""

__all__: list[str] = []
