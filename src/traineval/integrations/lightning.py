"""Lightning callbacks: precise BatchNorm statistics, the runtime guard, the eval contract.

Add one to the ``Trainer``::

    trainer = L.Trainer(callbacks=[PreciseBatchNorm(num_batches=100)])

* :class:`PreciseBatchNorm` recalibrates BatchNorm statistics on training data before each
  validation and at the end of ``fit`` (``te.recalibrate_batchnorm``; identical on every
  rank under DDP).
* :class:`ModeGuard` runs ``te.guard`` over the LightningModule while the Trainer runs it,
  and reports mode bugs (``TE1xx``) as they happen; a correct Lightning job is silent.
* :class:`EvalContract` checks the eval contract (``te.check``) once at the start of ``fit``
  and stops the job with the report when it fails.

Works with the unified ``lightning`` package (``import lightning.pytorch``) and falls back to
``pytorch_lightning``. Install with ``pip install "traineval[lightning] @ git+https://github.com/traineval/traineval"``.

>>> import torch, traineval as te
>>> from traineval.integrations.lightning import PreciseBatchNorm
>>> PreciseBatchNorm(num_batches=50).num_batches
50
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]  # the older package name of the same API
    except ImportError:
        raise ImportError(
            "traineval.integrations.lightning needs Lightning: "
            'pip install "traineval[lightning] @ git+https://github.com/traineval/traineval" '
            "(in a clone of traineval: pip install '.[lightning]'; or install lightning / pytorch_lightning yourself)"
        ) from None

from traineval import _torch
from traineval.errors import TraineValTypeError, TraineValValueError, describe_value
from traineval.integrations import _common
from traineval.integrations._common import EvalContractError

__all__ = ["EvalContract", "EvalContractError", "ModeGuard", "PreciseBatchNorm"]

Callback = pl.Callback
_FIT = "fit"


def _fn(trainer: Any) -> str:
    """The running entry point: ``"fit"``, ``"validate"``, ``"test"`` or ``"predict"``."""
    fn = getattr(getattr(trainer, "state", None), "fn", None)
    return str(getattr(fn, "value", fn) or "")


def _forward_defined(pl_module: nn.Module) -> bool:
    return type(pl_module).forward is not pl.LightningModule.forward


# ------------------------------------------------------------------------ PreciseBatchNorm
class PreciseBatchNorm(_common.PreciseBase, Callback):
    """Recalibrate BatchNorm statistics on training data before each validation and at the end of ``fit``.

    >>> from traineval.integrations.lightning import PreciseBatchNorm
    >>> cb = PreciseBatchNorm(num_batches=100, every_n_epochs=2)    # every other epoch
    >>> cb.reports                                                   # filled during fit
    []

    Before every validation of ``fit`` (in the epochs selected by ``every_n_epochs``; not
    before the sanity check) and once more when ``fit`` ends, every normalisation layer's
    running statistics are replaced by the exact mean and variance of its inputs over
    ``num_batches`` training batches (``te.recalibrate_batchnorm``: Wu & Johnson, *Rethinking
    "Batch" in BatchNorm*, 2021, Sec. 3). Validation metrics, checkpoints and the final
    model then use population statistics instead of the moving average of the last steps.

    Under DDP every rank passes its own shard of the training data (Lightning's
    ``DistributedSampler``) and the statistics are all-reduced, so every rank ends with the
    same statistics. Layers the job keeps in eval mode while training (frozen BatchNorm, by a
    ``te.freeze_batchnorm`` policy or by a ``bn.eval()`` in a hook) keep their statistics.
    The pass leaves every module's mode, the parameters and the random streams as they were;
    if it fails, the statistics are restored and the error stops ``fit``.

    Parameters:
        num_batches: training batches per recalibration (per rank); ``None`` for all of them.
        every_n_epochs: recalibrate before the validations of every n-th epoch.
        order: ``"single-pass"`` (one pass) or ``"layerwise"`` (each layer sees its
            upstream layers' new statistics; more passes) — see ``te.recalibrate_batchnorm``.
        dropout: ``"off"`` (the modes inference uses; default) or ``"on"``.
        data: the batches to use instead of ``trainer.train_dataloader``: an iterable, or a
            callable ``data(trainer)`` returning one.
        forward: ``forward(pl_module, batch)`` runs the model on a batch already moved to the
            device (default: ``pl_module(batch)`` for a tensor, ``pl_module(batch[0])`` for a
            tuple/list, ``pl_module(**batch)`` for a dict).
        at_fit_end: also recalibrate when ``fit`` ends (when training ran since the last time).

    Attributes:
        reports: the ``te.RecalibrationReport`` of every recalibration, in order.
    """

    def __init__(
        self,
        num_batches: int | None = 200,
        every_n_epochs: int = 1,
        order: str = "single-pass",
        dropout: str = "off",
        *,
        data: Iterable[Any] | Callable[[Any], Iterable[Any]] | None = None,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        at_fit_end: bool = True,
    ) -> None:
        self._setup_precise(num_batches, order, dropout, forward, at_fit_end)
        self.every_n_epochs = _common.positive_int(every_n_epochs, "every_n_epochs")
        if data is not None and not callable(data) and not isinstance(data, Iterable):
            raise TraineValTypeError(
                f"expected an iterable of batches or a callable data(trainer) for data, got {describe_value(data)}"
            )
        self.data = data
        self.at_fit_end = at_fit_end

    # -- hooks --------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Find the normalisation layers; refuse a set-up that cannot work before training starts."""
        if self._begin(pl_module, trainer.is_global_zero) and self.forward is None and not _forward_defined(pl_module):
            raise TraineValValueError(
                f"PreciseBatchNorm needs to run {type(pl_module).__name__} on training batches, but it defines "
                "no forward(); define forward() or pass forward=lambda module, batch: module.net(batch[0])"
            )

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Remember which normalisation layers training keeps in eval mode (frozen by the job)."""
        self._saw_training()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Recalibrate before a validation of ``fit`` (not the sanity check)."""
        if trainer.sanity_checking or _fn(trainer) != _FIT or not self._trained:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._run(trainer, pl_module, "before validation")

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Recalibrate once more if training ran since the last recalibration."""
        if self.at_fit_end and self._trained:
            self._run(trainer, pl_module, "end of fit")

    # -- work ---------------------------------------------------------------------------
    def _batches(self, trainer: Any) -> Iterable[Any]:
        data = self.data
        if data is not None:
            data = data(trainer) if callable(data) and not isinstance(data, Iterable) else data
        else:
            data = trainer.train_dataloader
            if data is None:
                raise TraineValValueError(
                    "PreciseBatchNorm found no training dataloader on the Trainer; pass data= to the callback"
                )
            if isinstance(data, (dict, list, tuple)):
                raise TraineValValueError(
                    f"PreciseBatchNorm: the Trainer has several training dataloaders ({type(data).__name__}); "
                    "pass data= (for example data=lambda trainer: trainer.train_dataloader['main'])"
                )
        if isinstance(data, (torch.Tensor, str, bytes)) or not isinstance(data, Iterable):
            raise TraineValTypeError(
                f"PreciseBatchNorm: data must be an iterable of batches, got {describe_value(data)}"
            )
        return data

    def _run(self, trainer: Any, pl_module: Any, when: str) -> None:
        user_forward, strategy = self.forward, trainer.strategy

        def forward(module: nn.Module, batch: Any) -> Any:
            batch = strategy.batch_to_device(batch)
            return _torch.feed(module, batch, forward=user_forward)

        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}, {when}"
        self._recalibrate(pl_module, self._batches(trainer), forward, trainer.is_global_zero, where)


# ------------------------------------------------------------------------------ ModeGuard
class ModeGuard(_common.GuardBase, Callback):
    """Run ``te.guard`` over the LightningModule while the Trainer runs it; report mode bugs as they happen.

    >>> from traineval.integrations.lightning import ModeGuard
    >>> cb = ModeGuard(on="warn", rules=["modes", "TE105"])      # codes or families
    >>> cb.diagnostics
    []

    The guard is active from ``setup`` to ``teardown`` of every Trainer entry point (``fit``,
    ``validate``, ``test``, ``predict``). Lightning's own mode handling is correct and stays
    silent: the sanity check and every validation run in eval mode under ``no_grad`` /
    ``inference_mode``, and ``on_validation_model_train`` restores each module's previous
    mode. What is reported (see ``traineval rules``): a submodule left in eval while the
    optimizer steps (TE106; the whole model: TE102), a validation or prediction step that runs
    in training mode (an ``on_validation_model_eval`` override that skips ``eval()``: TE101),
    functional dropout that stays active in eval (TE103), mode-sensitive modules the mode
    switch cannot reach (TE104), and BatchNorm batches too small for statistics (TE105).

    Lightning calls ``training_step``/``validation_step``, not the LightningModule's
    ``forward``; each batch is therefore treated as one forward of the LightningModule, so
    that a step that calls ``self.net(x)`` directly is checked as fully as one that calls
    ``self(x)``.

    Parameters:
        on: ``"warn"`` (a ``TraineValWarning``), ``"raise"`` (stop the job with
            ``te.GuardError``), ``"log"`` (logger ``traineval.guard``) or a callable that
            receives each ``Diagnostic``.
        rules: the codes or families to check (all ``TE1xx`` by default).
        allow: codes never reported for this model (e.g. ``["TE101"]`` for an EMA teacher).
        once, min_batchnorm_values, tracing: as for ``te.guard``.

    Attributes:
        diagnostics: every finding delivered so far (over all entry points).
        summaries: one ``te.GuardSummary`` per finished entry point (``fit``, ``test``, ...).
    """

    _scope: _common.GuardScope | None = None

    # -- life cycle -----------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Start guarding ``pl_module``."""
        self._stop()
        self._scope = _common.GuardScope(self._start_guard(pl_module))

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop guarding; keep the summary."""
        self._stop()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Remove every hook when the job fails or is interrupted."""
        self._stop()

    def _stop(self) -> None:
        scope, self._scope = self._scope, None
        try:
            if scope is not None:
                scope.close()
        finally:
            self._stop_guard()

    def _close(self, *args: Any, **kwargs: Any) -> None:
        if self._scope is not None:
            self._scope.close()

    # -- one scope per batch: Lightning calls steps, not the LightningModule's forward --------
    def _opener(stage: str) -> Callable[..., None]:  # type: ignore[misc]  # decorated by Lightning's untyped hook
        def hook(self: ModeGuard, trainer: Any, pl_module: Any, batch: Any, *args: Any, **kwargs: Any) -> None:
            if self._scope is not None:
                self._scope.open(stage, (batch,))

        hook.__doc__ = f"Open the scope of one {stage} batch."
        return hook

    on_train_batch_start = _opener("train")
    on_validation_batch_start = _opener("validation")  # the sanity check too
    on_test_batch_start = _opener("test")
    on_predict_batch_start = _opener("predict")
    on_train_batch_end = on_validation_batch_end = on_test_batch_end = on_predict_batch_end = _close
    # a batch-end a framework skipped (an exception handled inside the loop) must not leave a scope open
    on_train_epoch_end = on_validation_end = on_test_end = on_predict_end = _close
    del _opener


# --------------------------------------------------------------------------- EvalContract
class EvalContract(_common.ContractBase, Callback):
    """Check the eval contract (``te.check``) once at the start of ``fit``; stop the job with the report when it fails.

    >>> import torch
    >>> from traineval.integrations.lightning import EvalContract
    >>> cb = EvalContract(example=torch.randn(8, 20))               # a batch of model inputs
    >>> cb.report is None                                            # set at fit start
    True

    At ``on_fit_start`` the LightningModule is run on ``example`` (by default its
    ``example_input_array``; without one, the inputs of the first training batch, checked
    before the first step) in eval mode (deterministic,
    batch-independent, state unchanged, every mode-sensitive module reached, no functional
    dropout active) and twice in training mode (dropout and BatchNorm really train); see
    ``te.check``. The model's modes, parameters, buffers and the random streams are left as
    they were. On a failure :class:`EvalContractError` (an ``AssertionError``) carries the
    report naming the module at fault, before a single training step is spent. Under DDP
    every rank checks and all stop together if any fails.

    Parameters:
        example: model inputs with a batch dimension of at least 2 (a tensor is passed as
            ``pl_module(example)``, a tuple as ``pl_module(*example)``, a dict as keyword
            arguments), or a callable ``example(trainer)`` returning them. Moved to the
            model's device. Default: ``pl_module.example_input_array``, else the first
            training batch (its first element when the batch is a tuple or list, the
            ``(inputs, targets)`` convention; pass ``forward=`` for other layouts).
        forward: ``forward(pl_module, example)`` instead of calling the module.
        fail_on: ``"error"`` (default) or ``"warning"`` (warnings such as TE215/TE216 fail too).
        **check_kwargs: passed to ``te.check`` (``samples``, ``atol``, ``rtol``,
            ``batch_dim``, ``train_checks``, ``gap_threshold``). The BatchNorm statistics gap
            is not measured unless ``gap_threshold`` is given: before training the statistics
            are the initial ones.

    Attributes:
        report: the ``te.ContractReport`` of the last check.
    """

    needs_example = False  # example_input_array or the first batch stand in
    _pending = False

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Check the contract; raise :class:`EvalContractError` when it fails."""
        example = self.example
        if callable(example) and not isinstance(example, (torch.Tensor, nn.Module)):
            example = example(trainer)
        if example is None:
            example = getattr(pl_module, "example_input_array", None)
        if example is None:
            self._pending = True  # checked on the first training batch, before its step
            return
        self._run(trainer, pl_module, example)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """Without an example: check the contract on the first training batch's inputs."""
        if not self._pending:
            return
        self._pending = False
        example = batch[0] if isinstance(batch, (tuple, list)) and self.forward is None else batch
        self._run(trainer, pl_module, example)

    def _run(self, trainer: Any, pl_module: Any, example: Any) -> None:
        strategy = trainer.strategy

        def any_rank(failed: bool) -> bool:
            return bool(strategy.reduce_boolean_decision(failed, all=False))

        self._check(pl_module, example, any_rank if trainer.world_size > 1 else None, trainer.is_global_zero)
