"""The linter's name heuristics: which dotted names and identifiers mean what.

Plain data and two small predicates, shared by the visitor, the rules and the project index.
Everything here is a guess from spelling; the model analysis (:mod:`traineval.lint.models`)
decides from what the code builds wherever it can see it.
"""

from __future__ import annotations

import builtins
import re

NO_GRAD = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
           "torch.autograd.grad_mode.inference_mode"}
TE_EVAL = {"traineval.evaluating", "traineval.inference", "traineval.mc_dropout", "traineval.core.modes.evaluating",
           "traineval.core.modes.inference"}
TE_TRAIN = {"traineval.training", "traineval.core.modes.training"}
TRACERS = {"torch.jit.trace", "torch.jit.trace_module", "torch.export.export", "torch.fx.symbolic_trace",
           "torch.onnx.export", "torch.onnx.dynamo_export"}
WRAPPERS = {"copy.deepcopy", "deepcopy", "torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DataParallel",
            "torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel",
            "DDP", "FSDP", "torch.distributed.fsdp.FullyShardedDataParallel", "torch.jit.script"}
ALIAS_METHODS = {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "requires_grad_", "share_memory",
                 "to_empty", "type"}
MODULE_METHODS = {"load_state_dict", "parameters", "named_parameters", "modules", "named_modules",
                  "children", "named_children", "requires_grad_", "buffers", "named_buffers",
                  "register_buffer", "register_forward_hook", "register_forward_pre_hook"}
NOT_MODELS = re.compile(r"(^|[._])(\w*trainer|engine|runner|learner|fitter|solver|agent|experiment|tuner|estimator|"
                        r"session|loop|callback|pipeline|pipe|job|env|environment|dataset|loader|tokenizer|scheduler|"
                        r"optimi[sz]er|opt|args|config|cfg)s?$", re.IGNORECASE)
FORWARD_METHODS = {"forward", "generate", "predict", "predict_proba"}
FACTORIES = re.compile(r"^(timm\.create_model|timm\.models\.\w+|torchvision\.models\.(?!detection|segmentation|"
                       r"video|optical_flow|quantization|get_weight|list_models|get_model_weights)\w+|"
                       r"torchvision\.models\.\w+\.\w+|torch\.hub\.load)$")
FRAMEWORK_BASES = re.compile(
    r"(^|\.)(LightningModule|LightningDataModule|Callback|Trainer|Seq2SeqTrainer|TrainerCallback|"
    r"Accelerator|LightningLite|Fabric)$"
)
MODULE_BASES = re.compile(r"(^|\.)(\w*Module|\w*Model|\w*Layer|\w*Block|\w*Net|\w*Network|\w*Encoder|\w*Decoder|"
                          r"\w*Attention|\w*Head|\w*Backbone|\w*Norm\w*|Sequential|ModuleList)$")
BUILTINS = frozenset(dir(builtins))
_EVALISH = {"val", "valid", "validate", "validation", "eval", "evaluate", "evaluation", "evaluator", "predict",
            "prediction", "infer", "inference", "test"}
MC_WORDS = {"mc", "monte", "carlo", "mcd", "dropout", "uncertainty", "bayes", "bayesian", "sample", "sampling",
            "enable"}




def name_tokens(name: str) -> set[str]:
    return set(re.split(r"_+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()))


def is_evalish(name: str, filename: str = "") -> bool:
    """Whether a function is named like an evaluation routine (``validate``, ``run_eval``, ...)."""
    if name.startswith("test_") or (name.startswith("test") and filename.rsplit("/", 1)[-1].startswith("test")):
        return False  # pytest test functions are not evaluation routines
    return bool(name_tokens(name) & _EVALISH)
