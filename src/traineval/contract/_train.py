"""The training-mode half of the eval contract: TE216/TE217 (private)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from traineval import _torch
from traineval._rng import RngState
from traineval.catalog import make
from traineval.contract._outputs import flatten
from traineval.contract._probes import Probe, sensitivity, why_eval
from traineval.contract._session import SEED_A, SEED_B, Session, compare_outputs
from traineval.core import pins
from traineval.diagnostics import Diagnostic


def check_training_mode(s: Session, model: nn.Module, example: Any, forward: Any, findings: list[Diagnostic],
                  checks: dict[str, str], notes: list[str]) -> int:
    """Two forwards after ``model.train()``: TE216/TE217. Returns the number of forwards run."""
    model.train()
    probes, outputs = [], []
    try:
        for seed in (SEED_A, SEED_B):
            probe = Probe(s, "train")
            RngState.seed(seed)
            with torch.no_grad():
                outputs.append(probe.run(lambda: _torch.feed(model, example, forward=forward, unpack="all")))
            probes.append(probe)
            if seed == SEED_A:
                moved = {c.module for c in s.ledger.changes() if c.name in ("running_mean", "running_var")}
    except Exception as exc:
        notes.append(f"training-mode check skipped: the forward in training mode raised {type(exc).__name__}: {exc}")
        checks["training mode trains"] = "skipped (forward raised in training mode)"
        return len(probes) + 1
    finally:
        s.ledger.restore()
    inert: list[Diagnostic] = []
    seen: set[int] = set()
    for call in probes[0].calls:
        if id(call.module) in seen or not s.namer.registered(call.module):
            continue
        seen.add(id(call.module))
        found = sensitivity(call.module, call.path)
        if found is None or found.kind not in ("batchnorm", "dropout", "attention", "recurrent"):
            continue
        module = call.module
        if not call.training:
            why = why_eval(s, module, call.path)
            code = "TE217" if pins.pinned_flag(module) is False else "TE216"
            inert.append(make(code, where=call.path, module=call.path or "<model>", type=found.type_name, reason=why,
                              behaviour="stays in eval mode during training"))
        elif found.kind == "batchnorm" and module not in moved and getattr(module, "momentum", None) == 0:
            inert.append(make("TE216", where=call.path, module=call.path or "<model>", type=found.type_name,
                              reason="momentum=0, so its running statistics never move",
                              behaviour="does not update its running statistics in training"))
    findings.extend(inert)
    varied = compare_outputs(flatten(outputs[1]), flatten(outputs[0]), s) is not None
    if any(d.code == "TE216" for d in inert):
        checks["training mode trains"] = "warning (TE216)"
    elif inert:
        checks["training mode trains"] = "explained by a policy"
    else:
        checks["training mode trains"] = "passed"
    notes.append(f"training-mode outputs {'vary' if varied else 'do not vary'} between two RNG seeds")
    return 2
