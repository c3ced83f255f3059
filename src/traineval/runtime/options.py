"""Checking ``te.guard``'s arguments once, before anything is installed (private)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from traineval.catalog import get_rule
from traineval.catalog.te1xx import FAMILIES, RULES
from traineval.diagnostics import Diagnostic
from traineval.errors import TraineValTypeError, TraineValValueError, describe_value

OnFinding = Literal["warn", "raise", "log"] | Callable[[Diagnostic], object]
Tracing = Literal["auto", "always"]

CODES = tuple(r.code for r in RULES)
STEP_CODES = frozenset({"TE102", "TE106"})
TRACE_CODES = frozenset(FAMILIES["tracing"])


@dataclass(frozen=True)
class GuardOptions:
    """:func:`traineval.guard`'s keyword arguments, validated."""

    on: OnFinding
    rules: frozenset[str]  # enabled and not allowed
    allowed: frozenset[str]
    once: bool
    min_batchnorm_values: int
    trace_always: bool
    label: str


def parse(
    model: nn.Module,
    *,
    on: Any,
    rules: Any,
    allow: Any,
    once: Any,
    min_batchnorm_values: Any,
    tracing: Any,
    name: Any,
) -> GuardOptions:
    """Validate every option; raise one clear error for the first bad one."""
    label = name if name is not None else type(model).__name__
    if not isinstance(label, str):
        raise TraineValTypeError(f"expected a str for name, got {describe_value(name)}")
    checked_on = _check_on(on)
    enabled = codes(rules, "rules", everything=rules is None)
    allowed = frozenset(codes(allow, "allow", everything=False))
    if not isinstance(once, bool):
        raise TraineValTypeError(f"expected True or False for once, got {describe_value(once)}")
    if isinstance(min_batchnorm_values, bool) or not isinstance(min_batchnorm_values, int):
        raise TraineValTypeError(
            f"expected an int for min_batchnorm_values, got {describe_value(min_batchnorm_values)}"
        )
    if min_batchnorm_values < 2:
        raise TraineValValueError(
            f"min_batchnorm_values must be at least 2 (BatchNorm needs 2 values per channel), "
            f"got {min_batchnorm_values}"
        )
    if tracing not in ("auto", "always"):
        raise TraineValValueError(f"tracing must be 'auto' or 'always', got {tracing!r}")
    return GuardOptions(
        on=checked_on, rules=frozenset(enabled) - allowed, allowed=allowed, once=once,
        min_batchnorm_values=min_batchnorm_values, trace_always=tracing == "always", label=label,
    )


def _check_on(on: Any) -> OnFinding:
    if isinstance(on, str):
        if on == "warn":
            return "warn"
        if on == "raise":
            return "raise"
        if on == "log":
            return "log"
        raise TraineValValueError(f"on must be 'warn', 'raise', 'log' or a callable, got {on!r}")
    if not callable(on):
        raise TraineValTypeError(
            f"expected 'warn', 'raise', 'log' or a callable for on, got {describe_value(on)}"
        )
    return on


def codes(value: Any, what: str, *, everything: bool) -> set[str]:
    """The runtime codes named by ``value`` (codes or family names); all default ones if ``everything``."""
    if everything:
        return {r.code for r in RULES if r.default_enabled}
    items = [value] if isinstance(value, str) else value
    expected = f"expected diagnostic codes such as 'TE101' for {what}, got"
    try:
        items = list(items)
    except TypeError:
        raise TraineValTypeError(f"{expected} {describe_value(value)}") from None
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise TraineValTypeError(f"{expected} {describe_value(item)}")
        key = item.strip()
        if key.lower() in FAMILIES:
            out.update(FAMILIES[key.lower()])
            continue
        code = get_rule(key).code
        if code not in CODES:
            raise TraineValValueError(
                f"{code} is not a runtime code: te.guard checks {', '.join(CODES)} "
                f"(or the families {', '.join(FAMILIES)})"
            )
        out.add(code)
    return out


def optimizers(optimizer: Any, model: nn.Module) -> list[torch.optim.Optimizer]:
    """``optimizer`` as a list, each checked to be an optimizer that trains ``model``."""
    if optimizer is None:
        return []
    opts = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    for opt in opts:
        if not isinstance(opt, torch.optim.Optimizer):
            raise TraineValTypeError(
                "expected a torch.optim.Optimizer (or a list of them) for optimizer, "
                f"got {describe_value(opt)}"
            )
    params = {id(p) for p in model.parameters()}
    for opt in opts:
        if not any(id(p) in params for g in opt.param_groups for p in g["params"]):
            raise TraineValValueError(
                f"the {type(opt).__name__} passed as optimizer holds none of the parameters of "
                f"{type(model).__name__} — pass the optimizer that trains this model"
            )
    return opts

