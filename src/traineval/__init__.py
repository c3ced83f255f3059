"""traineval: PyTorch's train/eval mode system, controlled, corrected, checked and visible.

>>> import traineval as te
"""

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

__version__ = "0.1.0"

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
