"""What the Lightning and Hugging Face callbacks share (private, framework-free).

Feeding a framework's batch to the model, iterating a training loader a second time without
disturbing the one the framework is iterating, keeping the random streams of the job as they
were, the eval-contract failure, and :class:`GuardScope` — one "forward" of a guarded model
for frameworks whose step methods call submodules directly.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import torch
import torch.nn as nn

import traineval as te
from traineval import _torch
from traineval._rng import RngState
from traineval.core import pins
from traineval.core.sensitivity import is_norm_with_running_stats
from traineval.errors import TraineValError, TraineValTypeError, TraineValValueError, TraineValWarning, describe_value

logger = logging.getLogger("traineval.integrations")

ORDERS = ("single-pass", "layerwise")
DROPOUT = ("off", "on")


# ------------------------------------------------------------------------------- arguments
def positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """``value`` if it is a positive int (or ``None`` when allowed); a clear error otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TraineValTypeError(f"expected a positive int for {name}, got {describe_value(value)}")
    if value < 1:
        raise TraineValValueError(f"{name} must be at least 1, got {value}")
    return value


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``; a clear error otherwise."""
    if value not in options:
        raise TraineValValueError(
            f"{name} must be one of {', '.join(repr(o) for o in options)}, got {describe_value(value)}"
        )
    return value


def optional_callable(value: Any, name: str, signature: str) -> Any:
    """``value`` if it is ``None`` or callable; a clear error otherwise."""
    if value is not None and not callable(value):
        raise TraineValTypeError(f"expected a callable {signature} for {name}, got {describe_value(value)}")
    return value


# ------------------------------------------------------------------------------- batches
def fresh_loader(data: Any) -> Any:
    """An iterable over the same batches as ``data`` whose iteration leaves ``data``'s own alone.

    A ``DataLoader`` with persistent workers hands out *the same* iterator on every
    ``iter()`` (resetting it), and accelerate's ``DataLoaderShard`` keeps the job's
    gradient-accumulation state: iterating either in the middle of an epoch would disturb the
    epoch. Such loaders are re-created as a plain ``DataLoader`` over the same dataset and
    batch sampler (so a ``DistributedSampler`` keeps each rank's shard). Anything else is
    returned as it is.
    """
    from torch.utils.data import DataLoader, IterableDataset

    if not isinstance(data, DataLoader):
        return data
    plain = type(data) is DataLoader
    persistent = bool(getattr(data, "persistent_workers", False)) and data.num_workers > 0
    if plain and not persistent:
        return data
    if isinstance(data.dataset, IterableDataset) or data.batch_sampler is None:
        return data  # nothing to rebuild it from; iterate it as it is
    return DataLoader(
        data.dataset,
        batch_sampler=data.batch_sampler,
        num_workers=data.num_workers,
        collate_fn=data.collate_fn,
        pin_memory=data.pin_memory,
        timeout=data.timeout,
        worker_init_fn=data.worker_init_fn,
        multiprocessing_context=data.multiprocessing_context,
        generator=data.generator,
        prefetch_factor=data.prefetch_factor if data.num_workers > 0 else None,
        persistent_workers=False,
    )


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Leave the random streams (torch CPU and CUDA, ``random``, NumPy) as they were, so that
    a recalibration pass (a shuffling sampler, dropout) does not change the job's randomness."""
    state = RngState()
    try:
        yield
    finally:
        state.restore()


# ------------------------------------------------------------------------ recalibration
def norm_layers(model: nn.Module) -> list[nn.Module]:
    """The normalisation layers with running statistics in ``model`` (each once)."""
    return [m for m in model.modules() if is_norm_with_running_stats(m)]


def recalibrate(
    model: nn.Module,
    data: Iterable[Any],
    *,
    num_batches: int | None,
    forward: Callable[[nn.Module, Any], Any] | None,
    dropout: Literal["off", "on"],
    order: Literal["single-pass", "layerwise"],
    kept_in_eval: list[nn.Module],
) -> te.RecalibrationReport:
    """``te.recalibrate_batchnorm`` as a training job needs it.

    ``kept_in_eval`` are the normalisation layers the job itself kept in eval mode while
    training (a user's ``bn.eval()`` in a hook, which ``model.train()`` would not reproduce):
    they are pinned for the duration of the call so that they count as frozen and keep their
    statistics. The random streams are preserved, and the pass runs outside
    ``torch.inference_mode`` (which a framework's evaluation loop may have entered) so that
    the statistics written are ordinary tensors.
    """
    free = [m for m in kept_in_eval if pins.pinned_flag(m) is None]
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(preserved_rng())
        if free:
            stack.enter_context(te.freeze_batchnorm(model, free))
        return te.recalibrate_batchnorm(
            model, data, num_batches=num_batches, forward=forward, dropout=dropout, order=order, progress=False
        )


# ------------------------------------------------------------------------ eval contract
class EvalContractError(TraineValError, AssertionError):
    """The eval contract failed at the start of training; ``.report`` holds the full report.

    >>> from traineval.integrations._common import EvalContractError
    >>> issubclass(EvalContractError, AssertionError)
    True
    """

    def __init__(self, message: str, report: te.ContractReport) -> None:
        super().__init__(message)
        self.report = report


def contract_options(fail_on: Any, check_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validate the options of an ``EvalContract`` callback; return ``te.check``'s kwargs."""
    choice(fail_on, "fail_on", ("error", "warning"))
    allowed = {"batch_dim", "samples", "atol", "rtol", "gap_threshold", "train_checks"}
    unknown = sorted(set(check_kwargs) - allowed)
    if unknown:
        raise TraineValTypeError(
            f"unexpected keyword argument(s) {', '.join(unknown)}; EvalContract passes on "
            f"{', '.join(sorted(allowed))} to te.check"
        )
    # At the start of training BatchNorm statistics are usually the initial ones: the
    # statistics-gap warning (TE215) would always fire. Measure it only when asked.
    return {"gap_threshold": None, **check_kwargs}


def run_contract(
    model: nn.Module,
    example: Any,
    *,
    forward: Callable[[nn.Module, Any], Any] | None,
    fail_on: str,
    check_kwargs: dict[str, Any],
    any_rank: Callable[[bool], bool] | None = None,
    announce: bool = True,
) -> te.ContractReport:
    """``te.check`` the model; raise :class:`EvalContractError` with the report when it fails.

    ``any_rank(failed)`` combines the verdicts of every process of a distributed job, so that
    all of them stop together. Warnings below ``fail_on`` are issued as one
    :class:`~traineval.TraineValWarning` (when ``announce``).
    """
    with te.allow():  # the probe forwards are intended: a running te.guard must not report them
        report = te.check(model, _torch.to_device(example, _torch.device(model)), forward=forward, **check_kwargs)
    bad = report.errors if fail_on == "error" else report.errors + report.warnings
    failed = bool(bad)
    if any_rank is not None and any_rank(failed) and not failed:
        raise EvalContractError(
            "the eval contract failed on another process of this job (this process's report follows)\n"
            + str(report),
            report,
        )
    if failed:
        hint = "\nfix the findings above; `traineval rule CODE` explains each code"
        raise EvalContractError(str(report) + hint, report)
    if report.warnings and announce:
        warnings.warn(str(report), TraineValWarning, stacklevel=3)
    logger.info("EvalContract: %s", str(report).splitlines()[0])
    return report


# ------------------------------------------------------------------------------- guard
class GuardScope:
    """Present a block of framework code as one forward of the guarded model.

    ``te.guard`` runs its forward-time checks (TE101, TE103, TE104) when the guarded
    model's ``forward`` is called. Lightning calls ``training_step``/``validation_step``
    instead, and those often call submodules (``self.net(x)``) without ever calling the
    LightningModule itself. The callback therefore opens a :meth:`traineval.Guard.scope` at
    each batch start and closes it at the batch end; a step that does call the model
    (``self(x)``) is not checked twice, because the guard skips its own forward inside a scope.
    """

    def __init__(self, guard: te.Guard) -> None:
        self.guard = guard
        self._scope: Any = None

    def open(self, stage: str, args: tuple[Any, ...]) -> None:
        """Start the scope of one batch of ``stage`` (``args``: the batch, for the checks)."""
        self.close()
        if self.guard.active:
            self._scope = self.guard.scope(*args).open()

    def close(self) -> None:
        """End the current scope (idempotent)."""
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.close()


# --------------------------------------------------------------- callback building blocks
class PreciseBase:
    """The framework-free half of a ``PreciseBatchNorm`` callback: options, the layers, the
    training modes seen last, the recalibration and its reports."""

    def _setup_precise(self, num_batches: Any, order: Any, dropout: Any, forward: Any, at_end: Any) -> None:
        self.num_batches = positive_int(num_batches, "num_batches", allow_none=True)
        self.order: Literal["single-pass", "layerwise"] = choice(order, "order", ORDERS)  # type: ignore[assignment]  # checked against ORDERS
        self.dropout: Literal["off", "on"] = choice(dropout, "dropout", DROPOUT)  # type: ignore[assignment]  # checked against DROPOUT
        self.forward = optional_callable(forward, "forward", "forward(model, batch)")
        if not isinstance(at_end, bool):
            raise TraineValTypeError(f"expected True or False for at_fit_end / at_train_end, got {at_end!r}")
        self.reports: list[te.RecalibrationReport] = []
        self._norms: list[nn.Module] = []
        self._train_flags: list[bool] | None = None
        self._trained = False

    def _begin(self, model: nn.Module | None, announce: bool) -> bool:
        """Find the normalisation layers at the start of training; False when there are none."""
        self._norms = norm_layers(model) if model is not None else []
        self._train_flags, self._trained = None, False
        if not self._norms and announce:
            warnings.warn(
                f"PreciseBatchNorm: {type(model).__name__} has no normalisation layer with running statistics; "
                "the callback does nothing",
                TraineValWarning,
                stacklevel=3,
            )
        return bool(self._norms)

    def _saw_training(self) -> None:
        """Remember which normalisation layers training keeps in eval mode (frozen by the job)."""
        if self._norms:
            self._train_flags = [m.training for m in self._norms]
            self._trained = True

    def _recalibrate(self, model: nn.Module, data: Iterable[Any], forward: Any, announce: bool, when: str) -> None:
        flags = self._train_flags or [True] * len(self._norms)
        kept = [m for m, flag in zip(self._norms, flags, strict=False) if not flag]
        report = recalibrate(
            model, fresh_loader(data), num_batches=self.num_batches, forward=forward, dropout=self.dropout,
            order=self.order, kept_in_eval=kept,
        )
        self.reports.append(report)
        self._trained = False
        if announce:
            logger.info("PreciseBatchNorm (%s): %s", when, report)


class GuardBase:
    """The framework-free half of a ``ModeGuard`` callback: options, the running guard, its
    findings kept across runs."""

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
        options = {"on": on, "rules": rules, "allow": allow, "once": once,
                   "min_batchnorm_values": min_batchnorm_values, "tracing": tracing}
        te.guard(nn.Identity(), **options).remove()  # te.guard's own checks and messages, now
        self.options = options
        self.guard: te.Guard | None = None
        self.summaries: list[te.GuardSummary] = []
        self._done: list[te.Diagnostic] = []

    @property
    def diagnostics(self) -> list[te.Diagnostic]:
        """Every finding delivered so far, in order."""
        live = self.guard.diagnostics if self.guard is not None else []
        return [*self._done, *live]

    def _start_guard(self, model: nn.Module) -> te.Guard:
        self._stop_guard()
        self.guard = te.guard(model, name=type(model).__name__, **self.options)
        return self.guard

    def _stop_guard(self) -> None:
        guard, self.guard = self.guard, None
        if guard is not None:
            guard.remove()
            self._done.extend(guard.diagnostics)
            self.summaries.append(guard.summary())


class ContractBase:
    """The framework-free half of an ``EvalContract`` callback."""

    #: whether the framework offers no other source of model inputs than ``example=``
    needs_example = True

    def __init__(
        self,
        example: Any = None,
        *,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        fail_on: str = "error",
        **check_kwargs: Any,
    ) -> None:
        if example is None and self.needs_example:
            raise TraineValValueError(
                "EvalContract needs example= model inputs (a batch of at least 2 samples)"
            )
        self.example = example
        self.forward = optional_callable(forward, "forward", "forward(model, example)")
        self.fail_on = fail_on
        self.check_kwargs = contract_options(fail_on, check_kwargs)
        self.report: te.ContractReport | None = None

    def _check(self, model: nn.Module, example: Any, any_rank: Callable[[bool], bool] | None, announce: bool) -> None:
        self.report = None
        try:
            self.report = run_contract(
                model, example, forward=self.forward, fail_on=self.fail_on, check_kwargs=self.check_kwargs,
                any_rank=any_rank, announce=announce,
            )
        except EvalContractError as err:
            self.report = err.report
            raise
