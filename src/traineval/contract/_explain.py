"""Turning what the probes saw into diagnostics: which module, of what type, and why (private).

Used by :mod:`traineval.contract.check`; ``s`` is its session (namer, ledger, tolerances).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from traineval.catalog import make
from traineval.contract._probes import Call, Divergence, Probe, sensitivity, why_training
from traineval.core import pins
from traineval.diagnostics import Diagnostic


def coverage_findings(s: Any, ref: Probe, findings: list[Diagnostic]) -> dict[str, str]:
    """TE213 for every mode-sensitive module that ran in training mode; returns path -> why."""
    out: dict[str, str] = {}
    for call in ref.calls:
        if not call.training or call.path in out:
            continue
        found = sensitivity(call.module, call.path)
        if found is None:
            continue
        why = why_training(s, call.module, call.path, call.parent)
        out[call.path] = why
        code = "TE217" if pins.pinned_flag(call.module) is True else "TE213"
        findings.append(make(code, where=call.path, module=call.path or "<model>", type=found.type_name, reason=why,
                             behaviour=f"runs in training mode during eval ({found.kind})"))
    return out


def functional_findings(s: Any, ref: Probe, findings: list[Diagnostic]) -> None:
    """TE214 for active functional dropout / batch_norm calls made in eval."""
    seen: set[tuple[str | None, str]] = set()
    for call, path in ref.functional:
        caller = call.caller
        if caller is not None and caller.training and sensitivity(caller, path or "") is not None:
            continue  # follows the caller's mode; TE213 reports the caller
        if call.mode_independent:
            continue  # F.batch_norm without running statistics: batch statistics in both modes (TE211)
        if (path, call.what) in seen:
            continue
        seen.add((path, call.what))
        where = path if path is not None else "<forward>"
        findings.append(make("TE214", where=where, module=where or "<model>",
                             type=type(caller).__name__ if caller is not None else "function",
                             call=call.what, detail=call.detail))


def culprit(s: Any, div: Divergence | None, what: str, coverage: dict[str, str],
             ref: Probe) -> tuple[str, str, str, bool]:
    """``(where, type, reason, explained_by_policy)`` for the first divergence of a variant."""
    if div is None:
        return ("", type(s.model).__name__, "no module's output differs for the samples compared, so the "
                "difference arises outside the modules' forwards (in the forward= function, or in code that "
                "post-processes the output)", False)
    if div.key[2] == "in":
        if div.parent is None:
            return ("<forward>", "function", f"the inputs of `{div.path}` already differ: the forward= function "
                    "or the code calling the model makes them differ", False)
        module, path = div.parent
        own = f"in its own forward code, before it calls `{div.path}`"
    else:
        module, path = div.module, div.path
        own = "in its own forward code"
    kind = type(module).__name__
    explained = pins.pinned_flag(module) is True
    if div.shapes is not None:
        one, batch = div.shapes
        what_shape = f"the input it passes to `{div.path}`" if div.key[2] == "in" else "its output"
        return (path, kind, f"{what_shape} has shape {one} for one sample but {batch} for a batch of {s.n} "
                "(a `squeeze()` that also drops a batch dimension of size 1, or a reshape with a hard-coded "
                "batch size)", False)
    if path in coverage:
        return path, kind, f"it runs in training mode during eval: {coverage[path]}", explained
    if what == "batch":
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.running_mean is None:
            return (path, kind, f"{kind} with track_running_stats=False normalises with the statistics of the "
                    "current batch, in eval too", False)
        mixing = batch_first_mismatch(module, div.input_dim if div.key[2] == "out" else None)
        if mixing:
            return path, kind, mixing, False
    calls = [f"{c.what}({c.detail})" for c, p in ref.functional if p == path]
    if calls:
        return path, kind, f"{own} it calls {', '.join(sorted(set(calls)))} while in eval", False
    if what == "random":
        randoms = sorted({name for name, p in ref.random_calls if p == path})
        drawn = f"calls {', '.join(randoms)}" if randoms else "draws random numbers"
        return path, kind, f"{own} it {drawn} in eval", False
    return (path, kind, f"{own} it combines samples of the batch (a statistic over the batch dimension "
            "such as `x.mean(0)` or `x.std(0)`, a sort, softmax or attention across samples)", False)


def batch_first_mismatch(module: nn.Module, input_dim: int | None) -> str:
    """Why an attention/recurrent layer mixes samples when its ``batch_first`` disagrees with where
    the batch is (``input_dim``); ``""`` when it does not apply."""
    if input_dim is None:
        return ""
    if isinstance(module, (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                           nn.modules.rnn.RNNBase)):
        batch_first = bool(getattr(module, "batch_first", False))
        expected = 0 if batch_first else 1
        if input_dim != expected:
            return (f"it has batch_first={batch_first} and so reads dimension {expected} as the batch, but the "
                    f"batch is in dimension {input_dim}: it treats the samples as positions of one sequence "
                    f"and mixes them — pass batch_first={not batch_first} or transpose the input")
    return ""


def state_findings(s: Any, changes: list[Any], calls: list[Call], findings: list[Diagnostic]) -> None:
    """TE212 per module whose parameters or buffers the eval forwards changed."""
    flags = {id(c.module): c.training for c in calls}
    by_module: dict[int, list[Any]] = {}
    for change in changes:
        by_module.setdefault(id(change.module), []).append(change)
    for group in by_module.values():
        module = group[0].module
        if not s.namer.registered(module) and s.namer.holder(module) is None:
            continue  # built inside forward: thrown away after the call, not the model's state
        path = next((c.path for c in calls if c.module is module), None)
        if path is None:
            path = s.namer.names.get(id(module), f"<{type(module).__name__}>")
        what = "; ".join(f"`{c.name}` {c.how}" for c in group)
        if flags.get(id(module)) and isinstance(module, nn.modules.batchnorm._NormBase):
            reason = "it ran in training mode and updated its running statistics with the eval data (claim C4)"
        elif flags.get(id(module)) and sensitivity(module, path) is not None:
            reason = "it ran in training mode, which updates its state"
        else:
            reason = "its forward writes to its own parameters or buffers in eval"
        findings.append(make("TE212", where=path, module=path or "<model>", type=type(module).__name__,
                             changed=what, reason=reason))


def gap_findings(gaps: list[Any], findings: list[Diagnostic]) -> None:
    """TE215: one finding for the layers never updated, one per other flagged layer."""
    never = [g for g in gaps if g.never_updated]
    if never:
        names = ", ".join(f"`{g.module}`" for g in never[:6])
        names += f" and {len(never) - 6} more" if len(never) > 6 else ""
        findings.append(make("TE215", where=never[0].module, module=never[0].module, type=never[0].type,
                             gap=f"running statistics never updated ({len(never)} layer(s): {names})"))
    for g in gaps:
        if g.flagged and not g.never_updated:
            findings.append(make("TE215", where=g.module, module=g.module, type=g.type,
                                 gap=f"mean shift {g.mean_shift:.2f} std, scale gap x{g.scale_gap:.2f}"))
