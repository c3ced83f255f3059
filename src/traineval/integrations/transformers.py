"""Hugging Face ``Trainer`` callbacks: precise BatchNorm statistics, the runtime guard, the eval contract.

Add one to the ``Trainer``::

    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[ModeGuard()])

* :class:`PreciseBatchNorm` recalibrates BatchNorm statistics on training data before each
  evaluation and at the end of training (``te.recalibrate_batchnorm``).
* :class:`ModeGuard` runs ``te.guard`` over the model during ``trainer.train()`` and reports
  mode bugs (``TE1xx``) as they happen; a correct job is silent.
* :class:`EvalContract` checks the eval contract (``te.check``) once when training begins
  and stops it with the report when it fails.

Install with ``pip install "traineval[transformers]"``.

>>> from traineval.integrations.transformers import PreciseBatchNorm
>>> PreciseBatchNorm(num_batches=50).num_batches
50
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on what is installed
    raise ImportError(
        'traineval.integrations.transformers needs Hugging Face transformers: pip install "traineval[transformers]"'
    ) from None

import traineval as te
from traineval.errors import TraineValTypeError, TraineValValueError, TraineValWarning, describe_value
from traineval.integrations import _common
from traineval.integrations._common import EvalContractError

__all__ = ["EvalContract", "EvalContractError", "ModeGuard", "PreciseBatchNorm"]


def _is_main(args: Any) -> bool:
    return bool(getattr(args, "process_index", 0) == 0)


def _any_rank(failed: bool) -> bool:
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return failed
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([1.0 if failed else 0.0], device=device)
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


# ------------------------------------------------------------------------ PreciseBatchNorm
class PreciseBatchNorm(TrainerCallback):
    """Recalibrate BatchNorm statistics on training data before each evaluation and at the end of training.

    >>> from traineval.integrations.transformers import PreciseBatchNorm
    >>> cb = PreciseBatchNorm(num_batches=100, every_n_evals=2)     # before every other evaluation
    >>> cb.reports
    []

    When the ``Trainer`` is about to evaluate during training (``eval_strategy`` ``"steps"``
    or ``"epoch"``; one evaluation in ``every_n_evals``) and once more at the end of
    training, every normalisation layer's running statistics are replaced by the exact mean
    and variance of its inputs over ``num_batches`` training batches
    (``te.recalibrate_batchnorm``; Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021).
    Evaluation metrics, checkpoints saved afterwards and the final model use population
    statistics. In a distributed job every process passes its shard and the statistics are
    all-reduced. Layers kept in eval mode while training keep their statistics; modes,
    parameters and random streams are left as they were, and a failure restores the statistics.

    Parameters:
        num_batches: training batches per recalibration (per process); ``None`` for all.
        every_n_evals: recalibrate before one evaluation in ``every_n_evals``.
        order, dropout: as for ``te.recalibrate_batchnorm``.
        data: batches to use instead of the Trainer's training dataloader (an iterable).
        forward: ``forward(model, batch)`` (default ``model(**batch)`` for the Trainer's dict
            batches; tensors are moved to the model's device).
        at_train_end: also recalibrate when training ends (when it trained since the last time).

    Attributes:
        reports: the ``te.RecalibrationReport`` of every recalibration, in order.
    """

    def __init__(
        self,
        num_batches: int | None = 200,
        every_n_evals: int = 1,
        order: str = "single-pass",
        dropout: str = "off",
        *,
        data: Iterable[Any] | None = None,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        at_train_end: bool = True,
    ) -> None:
        self.num_batches = _common.positive_int(num_batches, "num_batches", allow_none=True)
        self.every_n_evals = _common.positive_int(every_n_evals, "every_n_evals")
        self.order = _common.choice(order, "order", _common.ORDERS)
        self.dropout = _common.choice(dropout, "dropout", _common.DROPOUT)
        if data is not None and (isinstance(data, (torch.Tensor, str, bytes)) or not isinstance(data, Iterable)):
            raise TraineValTypeError(f"expected an iterable of batches for data, got {describe_value(data)}")
        self.data = data
        self.forward = _common.optional_callable(forward, "forward", "forward(model, batch)")
        if not isinstance(at_train_end, bool):
            raise TraineValTypeError(f"expected True or False for at_train_end, got {describe_value(at_train_end)}")
        self.at_train_end = at_train_end
        self.reports: list[te.RecalibrationReport] = []
        self._norms: list[nn.Module] = []
        self._train_flags: list[bool] | None = None
        self._trained = False
        self._evals = 0
        self._done_step = -1

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kw: Any) -> None:
        """Find the normalisation layers."""
        self._norms = _common.norm_layers(model) if model is not None else []
        self._train_flags, self._trained, self._evals, self._done_step = None, False, 0, -1
        if not self._norms and _is_main(args):
            warnings.warn(
                f"PreciseBatchNorm: {type(model).__name__} has no normalisation layer with running statistics; "
                "the callback does nothing",
                TraineValWarning,
                stacklevel=2,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Remember the training modes; recalibrate if the Trainer evaluates after this step."""
        if not self._norms:
            return
        self._train_flags = [m.training for m in self._norms]
        self._trained = True
        self._maybe(args, state, control, kw)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Recalibrate if the Trainer evaluates at the end of this epoch."""
        self._maybe(args, state, control, kw)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Recalibrate once more if training ran since the last recalibration."""
        if self.at_train_end and self._trained and self._norms:
            self._run(args, state, kw, "end of training")

    def _maybe(self, args: Any, state: Any, control: Any, kw: dict[str, Any]) -> None:
        if not self._norms or not getattr(control, "should_evaluate", False) or self._done_step == state.global_step:
            return
        self._evals += 1
        if self._evals % self.every_n_evals == 0 and self._trained:
            self._run(args, state, kw, "before evaluation")

    def _run(self, args: Any, state: Any, kw: dict[str, Any], when: str) -> None:
        model = kw.get("model")
        data = self.data if self.data is not None else kw.get("train_dataloader")
        if model is None or data is None:
            raise TraineValValueError(
                "PreciseBatchNorm did not receive the model and the training dataloader from the Trainer; "
                "pass data= to the callback"
            )
        flags = self._train_flags or [True] * len(self._norms)
        kept = [m for m, flag in zip(self._norms, flags, strict=False) if not flag]
        report = _common.recalibrate(
            model, _common.fresh_loader(data), num_batches=self.num_batches, forward=self.forward,
            dropout=self.dropout, order=self.order, kept_in_eval=kept,
        )
        self.reports.append(report)
        self._trained = False
        self._done_step = state.global_step
        if _is_main(args):
            _common.log_report(report, f"step {state.global_step}, {when}")


# ------------------------------------------------------------------------------ ModeGuard
class ModeGuard(TrainerCallback):
    """Run ``te.guard`` over the model during ``trainer.train()``; report mode bugs as they happen.

    >>> from traineval.integrations.transformers import ModeGuard
    >>> cb = ModeGuard(on="raise", rules="modes")
    >>> cb.diagnostics
    []

    The guard is installed when training begins and removed when it ends. The ``Trainer``
    calls ``model.train()`` before every training step and ``model.eval()`` for evaluation
    under ``no_grad``, so a correct job is silent. Reported (see ``traineval rules``): a
    submodule kept in eval while the optimizer steps (a ``train()`` override, a policy-less
    freeze: TE106), a no-grad forward in training mode (TE101), functional dropout active in
    evaluation (TE103), mode-sensitive modules the mode switch cannot reach (TE104), and
    BatchNorm batches too small for statistics (TE105).

    The ``Trainer`` has no callback event for a failed ``train()``: if training raises, the
    guard stays installed until the callback (and the ``Trainer``) is garbage-collected, the
    next ``train()`` begins, or :meth:`remove` is called.

    Parameters:
        on: ``"warn"``, ``"raise"`` (``te.GuardError`` stops training), ``"log"`` or a callable
            receiving each ``Diagnostic``.
        rules: the codes or families to check (all ``TE1xx`` by default).
        allow, once, min_batchnorm_values, tracing: as for ``te.guard``.

    Attributes:
        diagnostics: every finding delivered so far.
        summaries: one ``te.GuardSummary`` per finished ``train()``.
    """

    def __init__(
        self,
        on: Any = "warn",
        rules: str | Iterable[str] | None = None,
        *,
        allow: str | Iterable[str] = (),
        once: bool = True,
        min_batchnorm_values: int = 16,
        tracing: str = "auto",
    ) -> None:
        self.options = {
            "on": on, "rules": rules, "allow": allow, "once": once,
            "min_batchnorm_values": min_batchnorm_values, "tracing": tracing,
        }
        _common.check_guard_options(**self.options)
        self.guard: te.Guard | None = None
        self.summaries: list[te.GuardSummary] = []
        self._done: list[te.Diagnostic] = []
        self._finalizer: Any = None

    @property
    def diagnostics(self) -> list[te.Diagnostic]:
        """Every finding delivered so far, in order."""
        live = self.guard.diagnostics if self.guard is not None else []
        return [*self._done, *live]

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kw: Any) -> None:
        """Start guarding the model."""
        self.remove()
        if model is None:
            raise TraineValValueError("ModeGuard did not receive the model from the Trainer")
        guard = te.guard(model, name=type(model).__name__, **self.options)
        self.guard = guard
        self._finalizer = weakref.finalize(self, guard.remove)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Stop guarding; keep the summary."""
        self.remove()

    def remove(self) -> None:
        """Remove the guard now (idempotent); its findings stay in :attr:`diagnostics`."""
        guard, self.guard = self.guard, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if guard is not None:
            guard.remove()
            self._done.extend(guard.diagnostics)
            self.summaries.append(guard.summary())


# --------------------------------------------------------------------------- EvalContract
class EvalContract(TrainerCallback):
    """Check the eval contract (``te.check``) once when training begins; stop it with the report when it fails.

    >>> import torch
    >>> from traineval.integrations.transformers import EvalContract
    >>> cb = EvalContract(example={"input_ids": torch.randint(0, 100, (4, 16))})
    >>> cb.report is None
    True

    When ``trainer.train()`` begins, the model is run on ``example`` in eval mode
    (deterministic, batch-independent, state unchanged, every mode-sensitive module reached,
    no functional dropout active) and twice in training mode; see ``te.check``. Modes,
    parameters, buffers and random streams are left as they were. On a failure
    :class:`EvalContractError` (an ``AssertionError``) carries the report naming the module at
    fault, before a training step is spent. In a distributed job all processes stop together.

    Parameters:
        example: model inputs with a batch dimension of at least 2 — for a Transformers
            model a dict such as ``{"input_ids": ..., "attention_mask": ...}`` (passed as
            keyword arguments); moved to the model's device.
        forward: ``forward(model, example)`` instead of calling the model.
        fail_on: ``"error"`` (default) or ``"warning"``.
        **check_kwargs: passed to ``te.check`` (``samples``, ``atol``, ``rtol``, ``batch_dim``,
            ``train_checks``, ``gap_threshold``; the statistics gap is measured only when
            ``gap_threshold`` is given).

    Attributes:
        report: the ``te.ContractReport`` of the last check.
    """

    def __init__(
        self,
        example: Any,
        *,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        fail_on: str = "error",
        **check_kwargs: Any,
    ) -> None:
        if example is None:
            raise TraineValValueError("EvalContract needs example= model inputs (a batch of at least 2 samples)")
        self.example = example
        self.forward = _common.optional_callable(forward, "forward", "forward(model, example)")
        self.fail_on = fail_on
        self.check_kwargs = _common.contract_options(fail_on, check_kwargs)
        self.report: te.ContractReport | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kw: Any) -> None:
        """Check the contract; raise :class:`EvalContractError` when it fails."""
        if model is None:
            raise TraineValValueError("EvalContract did not receive the model from the Trainer")
        self.report = None
        try:
            self.report = _common.run_contract(
                model, self.example, forward=self.forward, fail_on=self.fail_on, check_kwargs=self.check_kwargs,
                any_rank=_any_rank, announce=_is_main(args),
            )
        except EvalContractError as err:
            self.report = err.report
            raise
