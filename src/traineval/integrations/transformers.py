"""Hugging Face ``Trainer`` callbacks: precise BatchNorm statistics, the runtime guard, the eval contract.

Add one to the ``Trainer``::

    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[ModeGuard()])

* :class:`PreciseBatchNorm` recalibrates BatchNorm statistics on training data before each
  evaluation and at the end of training (``te.recalibrate_batchnorm``).
* :class:`ModeGuard` runs ``te.guard`` over the model during ``trainer.train()`` and reports
  mode bugs (``TE1xx``) as they happen; a correct job is silent.
* :class:`EvalContract` checks the eval contract (``te.check``) once when training begins
  and stops it with the report when it fails.

Install with ``pip install "traineval[transformers] @ git+https://github.com/traineval/traineval"``.

>>> from traineval.integrations.transformers import PreciseBatchNorm
>>> PreciseBatchNorm(num_batches=50).num_batches
50
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "traineval.integrations.transformers needs Hugging Face transformers: "
        'pip install "traineval[transformers] @ git+https://github.com/traineval/traineval" '
        "(in a clone of traineval: pip install '.[transformers]')"
    ) from None

from traineval import _torch
from traineval.errors import TraineValTypeError, TraineValValueError, describe_value
from traineval.integrations import _common
from traineval.integrations._common import EvalContractError

__all__ = ["EvalContract", "EvalContractError", "ModeGuard", "PreciseBatchNorm"]


def _is_main(args: Any) -> bool:
    return bool(getattr(args, "process_index", 0) == 0)


def _any_rank(failed: bool) -> bool:
    dist, _, world = _torch.distributed()
    if world < 2:
        return failed
    flag = torch.tensor([1.0 if failed else 0.0], device=_torch.collective_device(dist))
    dist.all_reduce(flag)
    return bool(flag.item() > 0)


# ------------------------------------------------------------------------ PreciseBatchNorm
class PreciseBatchNorm(_common.PreciseBase, TrainerCallback):
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
        self._setup_precise(num_batches, order, dropout, forward, at_train_end)
        self.every_n_evals: int = _common.positive_int(every_n_evals, "every_n_evals") or 1  # never None here
        if data is not None and (isinstance(data, (torch.Tensor, str, bytes)) or not isinstance(data, Iterable)):
            raise TraineValTypeError(f"expected an iterable of batches for data, got {describe_value(data)}")
        self.data = data
        self.at_train_end = at_train_end
        self._evals = 0
        self._done_step = -1

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kw: Any) -> None:
        """Find the normalisation layers."""
        self._begin(model, _is_main(args))
        self._evals, self._done_step = 0, -1

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Remember the training modes; recalibrate if the Trainer evaluates after this step."""
        self._saw_training()
        self._maybe(args, state, control, kw)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Recalibrate if the Trainer evaluates at the end of this epoch."""
        self._maybe(args, state, control, kw)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Recalibrate once more if training ran since the last recalibration."""
        if self.at_train_end and self._trained:
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
        self._recalibrate(model, data, self.forward, _is_main(args), f"step {state.global_step}, {when}")
        self._done_step = state.global_step


# ------------------------------------------------------------------------------ ModeGuard
class ModeGuard(_common.GuardBase, TrainerCallback):
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

    _finalizer: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kw: Any) -> None:
        """Start guarding the model."""
        self.remove()
        if model is None:
            raise TraineValValueError("ModeGuard did not receive the model from the Trainer")
        self._finalizer = weakref.finalize(self, self._start_guard(model).remove)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Stop guarding; keep the summary."""
        self.remove()

    def remove(self) -> None:
        """Remove the guard now (idempotent); its findings stay in :attr:`diagnostics`."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._stop_guard()


# --------------------------------------------------------------------------- EvalContract
class EvalContract(_common.ContractBase, TrainerCallback):
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

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None, **kw: Any) -> None:
        """Check the contract; raise :class:`EvalContractError` when it fails."""
        if model is None:
            raise TraineValValueError("EvalContract did not receive the model from the Trainer")
        self._check(model, self.example, _any_rank, _is_main(args))
