"""The eval contract, checked on a live model: ``te.check`` and ``te.assert_eval_contract``.

In evaluation mode a model must behave as a pure function of each sample: the same output on
every call (claim C5), an output for one sample that does not depend on the other samples in
its batch (C6), and no change to its state (C4). :func:`check` runs a handful of forwards on an
example batch and, when a rule breaks, names the module where it goes wrong.

>>> import torch, torch.nn as nn, traineval as te
>>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
>>> te.check(model, torch.randn(8, 4), gap_threshold=None).ok      # eval() makes it a pure function
True
>>> class Head(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.bns = [nn.BatchNorm1d(8)]          # a plain list: model.eval() never reaches it
...     def forward(self, x):
...         return self.bns[0](x)
>>> buggy = nn.Sequential(nn.Linear(4, 8), Head())
>>> report = te.check(buggy, torch.randn(8, 4), gap_threshold=None)
>>> sorted({(d.code, d.where) for d in report.errors})
[('TE211', '1.bns[0]'), ('TE212', '1.bns[0]'), ('TE213', '1.bns[0]')]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from traineval import _torch
from traineval._rng import RngState
from traineval.catalog import make
from traineval.contract._explain import coverage_findings, culprit, functional_findings, gap_findings, state_findings
from traineval.contract._outputs import MISMATCH, batch_size, difference, flatten, sample_dim, take, tensor_leaves
from traineval.contract._probes import Divergence, Probe
from traineval.contract._session import SEED_A, SEED_B, Session, compare_outputs, earlier, pairs
from traineval.contract._train import check_training_mode
from traineval.contract.report import ContractReport
from traineval.core.modes import ModeSnapshot
from traineval.diagnostics import Diagnostic
from traineval.errors import TraineValTypeError, TraineValValueError, require_module
from traineval.runtime.allow import allow


def _note_exception(exc: BaseException, what: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(f"(raised during te.check's {what}; the model was restored)")


def check(
    model: nn.Module,
    example: Any,
    *,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    batch_dim: int = 0,
    samples: int = 4,
    atol: float | None = None,
    rtol: float | None = None,
    gap_threshold: float | None = 1.0,
    train_checks: bool = True,
) -> ContractReport:
    """Check the eval contract of ``model`` on an example batch; name the module at fault.

    >>> import torch, traineval as te, traineval.examples as ex
    >>> report = te.check(ex.mlp(), torch.randn(8, 20), gap_threshold=None)
    >>> report.ok, report.forwards            # samples + 5 forwards
    (True, 9)

    Runs, all under ``torch.no_grad()`` and ``model.eval()`` unless said otherwise: the
    batch (seed A), the batch again (seed B: **TE210** if the outputs differ), each of
    ``samples`` samples alone and the batch reordered (**TE211** if a sample's output changes),
    then compares every parameter and buffer (**TE212**). While these run, every module call is
    watched: a mode-sensitive module running in training mode (**TE213**, registered or not)
    and functional dropout/batch-norm active inside a module in eval (**TE214**). The
    reference forward measures each BatchNorm's statistics gap (**TE215**, warning). Finally two
    forwards after ``model.train()`` check that dropout and BatchNorm really train (**TE216**,
    or **TE217** info when a traineval policy explains it). When an output differs, the
    module named is the first, in execution order, whose inputs still agree and whose outputs
    do not.

    ``example`` is a tensor (``model(x)``), a tuple (``model(*x)``), a dict (``model(**x)``), or
    anything ``forward(model, example)`` accepts. Tensors whose size along ``batch_dim`` equals
    the batch size are sliced per sample (1-D tensors of that length too); other values are
    passed as they are. Outputs may be tensors, tuples, lists, dicts, dataclasses or
    ``ModelOutput``; a leaf whose shape does not change with the batch (a loss) is not compared
    for batch independence. Tolerances default by dtype (float32: ``atol=rtol=1e-4``, with
    ``atol`` scaled by the RMS of the reference when it exceeds 1). ``gap_threshold`` (std
    units) flags a BatchNorm whose running mean is that far from the batch mean; ``None``
    skips the gap (random inputs). ``train_checks=False`` skips the two training forwards.

    The model's modes, parameters, buffers and simple attributes (also of modules held in plain
    containers) and the global RNG states (torch CPU and CUDA, ``random``, NumPy) are exactly as
    before — also when the model raises, in which case the exception propagates.
    """
    require_module(model)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise TraineValValueError(f"samples must be a positive int, got {samples!r}")
    if not isinstance(batch_dim, int) or isinstance(batch_dim, bool) or batch_dim < 0:
        raise TraineValValueError(f"batch_dim must be a non-negative int, got {batch_dim!r}")
    for name, value, lowest in (("atol", atol, 0.0), ("rtol", rtol, 0.0), ("gap_threshold", gap_threshold, None)):
        _check_tolerance(name, value, lowest)
    if not isinstance(train_checks, bool):
        raise TraineValTypeError(f"train_checks must be True or False, got {type(train_checks).__name__}")
    if forward is not None and not callable(forward):
        raise TraineValTypeError(f"forward must be a callable (model, example) -> output, got {type(forward).__name__}")
    for p in model.parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise TraineValValueError("the model has lazy modules that are not initialised yet; "
                                      "run one forward before te.check")
    for t in tensor_leaves(example):
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise TraineValValueError(
                f"the example holds {bad} NaN/inf value(s) (in a {tuple(t.shape)} tensor); the contract "
                "compares outputs, and NaN never equals NaN — pass a finite example batch")
    n = batch_size(example, batch_dim)
    if n < 2:
        raise TraineValValueError(
            f"the example batch has {n} sample(s) along batch_dim={batch_dim}; batch independence needs at "
            "least 2 — pass a batch of several samples (or set batch_dim for sequence-first inputs)")
    selected = torch.linspace(0, n - 1, min(samples, n)).round().long().unique()
    modes, rng = ModeSnapshot((model,)), RngState()
    s = Session(model, n, selected, atol, rtol, gap_threshold)
    s.ledger.add_tree(model)
    for held in s.namer.held:  # modules in plain lists/dicts: model.eval() does not reach them, we do
        s.ledger.add_tree(held)
    try:
        with allow():  # the probe forwards are deliberate look-alikes of mode bugs: te.guard stays quiet
            return _run_checks(s, model, example, forward, batch_dim, train_checks)
    finally:
        try:
            s.ledger.restore(modes=True)  # modules outside the registry too; ModeSnapshot then applies pins
        finally:
            modes.restore()
            rng.restore()


def _run_checks(s: Session, model: nn.Module, example: Any, forward: Any, batch_dim: int,
                train_checks: bool) -> ContractReport:
    n, sel = s.n, s.selected
    findings: list[Diagnostic] = []
    checks: dict[str, str] = {}
    notes: list[str] = []
    forwards = 0

    def run(probe: Probe, batch: Any, seed: int, what: str) -> Any:
        nonlocal forwards
        forwards += 1
        RngState.seed(seed)
        try:
            with torch.no_grad():
                return probe.run(lambda: _torch.feed(model, batch, forward=forward, unpack="all"))
        except BaseException as exc:
            _note_exception(exc, what)
            raise

    model.eval()
    ref = Probe(s, "ref")
    out_ref = run(ref, example, SEED_A, "eval forward of the example batch")
    ref_leaves = flatten(out_ref)
    coverage = coverage_findings(s, ref, findings)
    functional_findings(s, ref, findings)

    # C5: deterministic in eval
    rep = Probe(s, "repeat")
    out_rep = run(rep, example, SEED_B, "second eval forward (another RNG seed)")
    diff = compare_outputs(flatten(out_rep), ref_leaves, s)
    random_eval = diff is not None
    random_path = rep.first.path if rep.first is not None else None
    if diff is None:
        checks["deterministic in eval"] = "passed"
    else:
        path, delta = diff
        where, module_type, reason, explained = culprit(s, rep.first, "random", coverage, ref)
        code = "TE217" if explained else "TE210"
        if not (explained and any(d.code == "TE217" and d.where == where for d in findings)):
            findings.append(make(code, where=where, module=where or "<model>", type=module_type, reason=reason,
                                 path=path, delta=f"{delta:.3g}", behaviour="makes eval outputs random"))
        checks["deterministic in eval"] = "explained by a policy" if explained else f"FAILED ({code})"

    # C6: batch-independent in eval
    first: Divergence | None = None
    worst: tuple[str, str, float] | None = None
    out_dims: dict[str, int] = {}
    batch_free: list[str] = []
    for j, index in enumerate(sel.tolist()):
        probe = Probe(s, "alone", position=j)
        try:
            one = run(probe, take(example, torch.tensor([index]), batch_dim, n), SEED_A,
                      f"eval forward of sample {index}")
        except Exception as exc:  # works for the batch, fails for one sample: batch-dependent
            if worst is None:
                worst = ("output", f"sample {index} alone raises {type(exc).__name__}: {exc}", math.inf)
            first = earlier(first, probe.first or probe.raised)
            continue
        for (path, a), (_, b) in pairs(flatten(one), ref_leaves, f"sample {index} alone"):
            if not isinstance(b, torch.Tensor):
                continue
            d = sample_dim(b.shape, a.shape, n) if isinstance(a, torch.Tensor) else None
            if d is None:
                if isinstance(a, torch.Tensor) and a.shape == b.shape and path not in batch_free:
                    batch_free.append(path)
                continue
            if d == MISMATCH:
                if worst is None:
                    worst = (path, f"sample {index} alone gives shape {tuple(a.shape)}, the batch {tuple(b.shape)}",
                             math.inf)
                continue
            out_dims.setdefault(path, d)
            gap = difference(a, b.narrow(d, index, 1), s.atol, s.rtol)
            if gap is not None and worst is None:
                worst = (path, f"sample {index} alone vs. in the batch, max |Δ| = {gap:.3g}", gap)
        first = earlier(first, probe.first)
    perm = torch.roll(torch.arange(n), 1)
    inverse = torch.argsort(perm)
    probe = Probe(s, "reorder", inverse=inverse[sel])
    shuffled = run(probe, take(example, perm, batch_dim, n), SEED_A, "eval forward of the reordered batch")
    for (path, a), (_, b) in pairs(flatten(shuffled), ref_leaves, "the reordered batch"):
        d = out_dims.get(path)
        if d is None or not isinstance(a, torch.Tensor) or a.shape != b.shape:
            continue
        gap = difference(a.index_select(d, inverse.to(a.device)), b, s.atol, s.rtol)
        if gap is not None and worst is None:
            worst = (path, f"the batch reordered vs. in order, max |Δ| = {gap:.3g}", gap)
    first = earlier(first, probe.first)
    if batch_free:
        notes.append("output leaves with no batch dimension (not compared per sample): " + ", ".join(batch_free))
    if worst is None:
        checks["batch-independent in eval"] = "passed" if out_dims else "not checked: no output has a batch dimension"
    else:
        where, module_type, reason, explained = culprit(s, first, "batch", coverage, ref)
        # random eval outputs make every comparison differ: only a module that parts *before* the
        # randomness enters (in execution order) is evidence of batch dependence
        caused_by_randomness = random_eval and (
            first is None or random_path is None or first.path == random_path or explained)
        if caused_by_randomness:
            checks["batch-independent in eval"] = "inconclusive: eval outputs are random" + (
                " (by policy)" if explained else " (fix that first)")
        else:
            path, how, _ = worst
            findings.append(make("TE211", where=where, module=where or "<model>", type=module_type, reason=reason,
                                 path=path, how=how))
            checks["batch-independent in eval"] = "FAILED (TE211)"

    # C4: state unchanged by eval
    changes = s.ledger.changes()
    state_findings(s, changes, ref.calls, findings)
    checks["state unchanged by eval"] = "FAILED (TE212)" if any(d.code == "TE212" for d in findings) else "passed"
    checks["mode coverage"] = "FAILED (TE213)" if any(d.code == "TE213" for d in findings) else "passed"
    checks["no functional dropout in eval"] = (
        "FAILED (TE214)" if any(d.code == "TE214" for d in findings) else "passed")
    s.ledger.restore()

    gaps = list(s.gaps.values())
    gap_findings(gaps, findings)
    if s.gap_threshold is None:
        checks["BatchNorm statistics gap"] = "not measured"
    elif not gaps:
        checks["BatchNorm statistics gap"] = "no BatchNorm in eval"
    else:
        checks["BatchNorm statistics gap"] = "warning (TE215)" if any(g.flagged for g in gaps) else "passed"

    if train_checks:
        forwards += check_training_mode(s, model, example, forward, findings, checks, notes)
    findings.sort(key=lambda d: (-d.severity.rank, d.code, d.where))
    return ContractReport(findings, checks, gaps, n, sel.tolist(), forwards, notes)


def _check_tolerance(name: str, value: object, lowest: float | None) -> None:
    """``value`` must be ``None`` or a finite real number >= ``lowest`` (> 0 when ``lowest`` is None)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TraineValTypeError(f"{name} must be a number or None, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (value < lowest if lowest is not None else value <= 0):
        bound = f">= {lowest:g}" if lowest is not None else "> 0"
        raise TraineValValueError(f"{name} must be a finite number {bound} (or None for the default), got {value!r}")


def assert_eval_contract(model: nn.Module, example: Any, *, fail_on: str = "error", **kwargs: Any) -> ContractReport:
    """:func:`check`, raising ``AssertionError`` with the readable report when it finds a violation.

    Meant for test suites: ``fail_on="error"`` (default) fails on error-level findings,
    ``fail_on="warning"`` on warnings too. Returns the report when the contract holds. Takes the
    keyword arguments of :func:`check`.

    >>> import torch, torch.nn as nn, traineval as te
    >>> te.assert_eval_contract(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3)), torch.randn(4, 4)).ok
    True
    >>> class Noisy(nn.Module):
    ...     def forward(self, x):
    ...         return x + torch.randn_like(x)       # noise in eval too
    >>> te.assert_eval_contract(Noisy(), torch.randn(4, 4))
    Traceback (most recent call last):
    ...
    AssertionError: eval contract: 1 error(s), 0 warning(s) — batch of 4, samples [0, 1, 2, 3] checked alone, 9 forwards
    ...
    """
    if fail_on not in ("error", "warning"):
        raise TraineValValueError(f"fail_on must be 'error' or 'warning', got {fail_on!r}")
    report = check(model, example, **kwargs)
    bad = report.errors if fail_on == "error" else report.errors + report.warnings
    if bad:
        raise AssertionError(str(report))
    return report
