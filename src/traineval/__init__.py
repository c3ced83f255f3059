"""traineval: PyTorch's train/eval mode system, controlled, corrected, checked and visible.

>>> import traineval as te
>>> te.modes(te.examples.mlp())[""]
True

Public names are loaded on first use (PEP 562), so ``traineval lint`` and ``traineval rules``
start without importing torch.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module defining it
_EXPORTS: dict[str, str] = {
    "ContractReport": "traineval.contract",
    "Diagnostic": "traineval.diagnostics",
    "Guard": "traineval.guard",
    "GuardError": "traineval.guard",
    "GuardSummary": "traineval.guard",
    "LayerRecalibration": "traineval.bnstats",
    "MCPrediction": "traineval.policies",
    "ModeReport": "traineval.describe",
    "ModeSensitivity": "traineval.sensitivity",
    "ModuleMode": "traineval.describe",
    "Policy": "traineval.policies",
    "RecalibrationReport": "traineval.bnstats",
    "Rule": "traineval.diagnostics",
    "Severity": "traineval.diagnostics",
    "StatGap": "traineval.contract",
    "TraineValError": "traineval.errors",
    "TraineValWarning": "traineval.errors",
    "allow": "traineval.allow",
    "assert_eval_contract": "traineval.contract",
    "check": "traineval.contract",
    "classify": "traineval.sensitivity",
    "describe": "traineval.describe",
    "evaluating": "traineval.modes",
    "freeze_batchnorm": "traineval.policies",
    "guard": "traineval.guard",
    "inference": "traineval.modes",
    "is_allowed": "traineval.allow",
    "is_norm_with_running_stats": "traineval.sensitivity",
    "mc_dropout": "traineval.policies",
    "mode_sensitive": "traineval.sensitivity",
    "modes": "traineval.modes",
    "predict_mc": "traineval.policies",
    "recalibrate_batchnorm": "traineval.bnstats",
    "set_modes": "traineval.modes",
    "training": "traineval.modes",
}

if TYPE_CHECKING:
    from traineval.allow import allow, is_allowed
    from traineval.bnstats import LayerRecalibration, RecalibrationReport, recalibrate_batchnorm
    from traineval.contract import ContractReport, StatGap, assert_eval_contract, check
    from traineval.describe import ModeReport, ModuleMode, describe
    from traineval.diagnostics import Diagnostic, Rule, Severity
    from traineval.errors import TraineValError, TraineValWarning
    from traineval.guard import Guard, GuardError, GuardSummary, guard
    from traineval.modes import evaluating, inference, modes, set_modes, training
    from traineval.policies import MCPrediction, Policy, freeze_batchnorm, mc_dropout, predict_mc
    from traineval.sensitivity import (
        ModeSensitivity,
        classify,
        is_norm_with_running_stats,
        mode_sensitive,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in {"examples", "catalog", "lint", "report", "integrations", "demo"}:
            return importlib.import_module(f"traineval.{name}")
        raise AttributeError(f"module 'traineval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    types.ModuleType.__setattr__(_package, name, value)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module. Importing ``traineval.describe`` (or ``traineval.guard``) binds the
    submodule on the package; there the public function of that name must stay visible."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


import sys  # noqa: E402

_package = sys.modules[__name__]
_package.__class__ = _Package

__all__ = [
    "ContractReport",
    "Diagnostic",
    "Guard",
    "GuardError",
    "GuardSummary",
    "LayerRecalibration",
    "MCPrediction",
    "ModeReport",
    "ModeSensitivity",
    "ModuleMode",
    "Policy",
    "RecalibrationReport",
    "Rule",
    "Severity",
    "StatGap",
    "TraineValError",
    "TraineValWarning",
    "__version__",
    "allow",
    "assert_eval_contract",
    "check",
    "classify",
    "describe",
    "evaluating",
    "freeze_batchnorm",
    "guard",
    "inference",
    "is_allowed",
    "is_norm_with_running_stats",
    "mc_dropout",
    "mode_sensitive",
    "modes",
    "predict_mc",
    "recalibrate_batchnorm",
    "set_modes",
    "training",
]
