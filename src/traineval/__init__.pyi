# The public API of traineval, declared once. Each `from MODULE import NAME as NAME` line is
# a public name and the module that defines it: type checkers read this file, and
# `traineval/__init__.py` reads it at import time to load each name on first use (PEP 562) and to
# build `__all__`. Submodules reachable as attributes (`te.examples`) are the
# `from traineval import X as X` lines; they are not in `__all__`.
# The layout of the package: docs/architecture.md in the repository.

from traineval import catalog as catalog
from traineval import demo as demo
from traineval import examples as examples
from traineval import integrations as integrations
from traineval import lint as lint
from traineval.bnstats.recalibrate import LayerRecalibration as LayerRecalibration
from traineval.bnstats.recalibrate import RecalibrationReport as RecalibrationReport
from traineval.bnstats.recalibrate import recalibrate_batchnorm as recalibrate_batchnorm
from traineval.contract.check import assert_eval_contract as assert_eval_contract
from traineval.contract.check import check as check
from traineval.contract.report import ContractReport as ContractReport
from traineval.contract.report import StatGap as StatGap
from traineval.core.modes import evaluating as evaluating
from traineval.core.modes import inference as inference
from traineval.core.modes import modes as modes
from traineval.core.modes import set_modes as set_modes
from traineval.core.modes import training as training
from traineval.core.policies import Policy as Policy
from traineval.core.policies import freeze_batchnorm as freeze_batchnorm
from traineval.core.policies import mc_dropout as mc_dropout
from traineval.core.predict import MCPrediction as MCPrediction
from traineval.core.predict import predict_mc as predict_mc
from traineval.core.sensitivity import ModeSensitivity as ModeSensitivity
from traineval.core.sensitivity import classify as classify
from traineval.core.sensitivity import is_norm_with_running_stats as is_norm_with_running_stats
from traineval.core.sensitivity import mode_sensitive as mode_sensitive
from traineval.core.tree import ModeReport as ModeReport
from traineval.core.tree import ModuleMode as ModuleMode
from traineval.core.tree import describe as describe
from traineval.diagnostics import Diagnostic as Diagnostic
from traineval.diagnostics import Rule as Rule
from traineval.diagnostics import Severity as Severity
from traineval.errors import TraineValError as TraineValError
from traineval.errors import TraineValWarning as TraineValWarning
from traineval.runtime.allow import allow as allow
from traineval.runtime.allow import is_allowed as is_allowed
from traineval.runtime.guard import Guard as Guard
from traineval.runtime.guard import guard as guard
from traineval.runtime.results import GuardError as GuardError
from traineval.runtime.results import GuardSummary as GuardSummary
from traineval.runtime.scope import GuardScope as GuardScope

__version__: str
__all__: list[str]
