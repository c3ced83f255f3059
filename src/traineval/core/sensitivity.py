"""Which modules change behaviour with the mode, and how.

A module is *mode-sensitive* when its output or its state depends on ``module.training``.
traineval knows every such layer in ``torch.nn`` (the table in :mod:`traineval.ops`, with the
conditions under which each really differs: a ``Dropout(p=0)`` does not), and detects custom modules by reading
the source of their ``forward`` — and the methods of the class it calls — for
``self.training``. A class whose source cannot be read is reported as ``unknown``, never
guessed. Strings and comments that mention "training" do not count: the source is parsed.

>>> import torch.nn as nn, traineval as te
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.0))
>>> [(s.name, s.kind) for s in te.mode_sensitive(model)]      # Dropout(p=0) does nothing
[('1', 'batchnorm')]
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from traineval import ops
from traineval.errors import require_module

KINDS = (
    "batchnorm",
    "instancenorm",
    "dropout",
    "activation",
    "attention",
    "recurrent",
    "spectral_norm",
    "qat",
    "custom",
    "unknown",
)


@dataclass(frozen=True)
class ModeSensitivity:
    """How one module depends on the mode.

    ``kind`` is one of ``batchnorm``, ``instancenorm``, ``dropout``, ``activation``,
    ``attention``, ``recurrent``, ``spectral_norm``, ``qat``, ``custom`` or ``unknown``;
    ``reason`` says in words what changes between the modes.
    """

    name: str
    module: nn.Module
    kind: str
    reason: str

    @property
    def type_name(self) -> str:
        """The module's class name."""
        return type(self.module).__name__

    def __repr__(self) -> str:
        return f"ModeSensitivity(name={self.name!r}, type={self.type_name}, kind={self.kind!r})"


# ---------------------------------------------------------------------------- built-in table
class _Attributes(dict):
    """``str.format_map`` over a module's attributes (``{dropout.p:g}`` reads ``m.dropout.p``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def __missing__(self, key: str) -> Any:
        return getattr(self.module, key)


def _attribute(module: nn.Module, dotted: str) -> Any:
    value: Any = module
    for part in dotted.split("."):
        value = getattr(value, part, None) if not part.isdigit() else _item(value, int(part))
    return value


def _item(value: Any, index: int) -> Any:
    try:
        return value[index]
    except (TypeError, IndexError, KeyError):
        return None


def _resolve(name: str) -> type | None:
    """The class named ``name`` in ``traineval.ops`` (``None`` if this torch lacks it)."""
    module, _, attr = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr, None)
    except ImportError:  # pragma: no cover - an older torch
        return None
    return found if isinstance(found, type) else None


@functools.lru_cache(maxsize=1)
def _table() -> tuple[tuple[type, ops.ModuleOp], ...]:
    rows = ((_resolve(row.name), row) for row in ops.MODULES)
    return tuple((cls, row) for cls, row in rows if cls is not None)


@functools.cache
def _table_row(cls: type) -> ops.ModuleOp | None:
    return next((row for base, row in _table() if issubclass(cls, base)), None)


def _builtin(module: nn.Module, row: ops.ModuleOp) -> tuple[str, str] | None:
    """(kind, reason) when ``module`` of a table class differs between the modes; else ``None``."""
    if row.container or not all(g.holds(_attribute(module, g.attr), built=True) for g in row.gates):
        return None
    return row.kind, row.reason.format_map(_Attributes(module))


def is_norm_with_running_stats(module: nn.Module) -> bool:
    """True for every BatchNorm/SyncBatchNorm/InstanceNorm (and subclass) that tracks running
    statistics — the layers whose eval output depends on ``running_mean``/``running_var``.

    >>> import torch.nn as nn, traineval as te
    >>> te.is_norm_with_running_stats(nn.BatchNorm2d(3)), te.is_norm_with_running_stats(
    ...     nn.BatchNorm2d(3, track_running_stats=False))
    (True, False)
    """
    from torch.nn.modules.batchnorm import _NormBase

    return isinstance(module, _NormBase) and getattr(module, "running_mean", None) is not None


# ------------------------------------------------------------------ custom modules, from source
@dataclass(frozen=True)
class _SourceVerdict:
    reads_training: bool | None  # None: source unavailable
    detail: str


def _reads_training(fn: object, cls: type, seen: set[str], depth: int = 0) -> _SourceVerdict:
    """Whether function ``fn`` (a method of ``cls``) reads ``self.training``, following
    ``self.method(...)`` calls and ``super().method(...)`` within the class hierarchy."""
    fn = inspect.unwrap(fn)  # type: ignore[arg-type]
    qual = getattr(fn, "__qualname__", repr(fn))
    if qual in seen or depth > 8:
        return _SourceVerdict(False, "")
    seen.add(qual)
    if getattr(fn, "__module__", "") == "torch.nn.modules.module":
        return _SourceVerdict(False, "")  # nn.Module's own methods: no mode dependence
    try:
        source = textwrap.dedent(inspect.getsource(fn))  # type: ignore[arg-type]
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError) as exc:
        return _SourceVerdict(None, f"source of {qual} unavailable ({type(exc).__name__})")
    func = next(
        (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None
    )
    if func is None or not func.args.args:
        return _SourceVerdict(False, "")
    self_name = func.args.args[0].arg
    called: list[str] = []
    super_called: list[str] = []
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "training"
            and isinstance(node.value, ast.Name)
            and node.value.id == self_name
            and isinstance(node.ctx, ast.Load)
        ):
            return _SourceVerdict(True, f"{qual} reads self.training (line {node.lineno})")
        if isinstance(node, ast.Call):
            f = node.func
            if (
                isinstance(f, ast.Name)
                and f.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == self_name
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "training"
            ):
                return _SourceVerdict(True, f"{qual} reads getattr(self, 'training')")
            if isinstance(f, ast.Attribute):
                if isinstance(f.value, ast.Name) and f.value.id == self_name:
                    called.append(f.attr)
                elif (
                    isinstance(f.value, ast.Call)
                    and isinstance(f.value.func, ast.Name)
                    and f.value.func.id == "super"
                ):
                    super_called.append(f.attr)
    unknown: _SourceVerdict | None = None
    owner = next((k for k in cls.__mro__ if getattr(fn, "__name__", None) in vars(k)), cls)
    targets = [(getattr(cls, name, None), cls) for name in called]
    mro = cls.__mro__
    start = mro.index(owner) + 1 if owner in mro else 1
    for name in super_called:
        for parent in mro[start:]:
            if name in vars(parent):
                targets.append((vars(parent)[name], parent))
                break
    for target, where in targets:
        if not (inspect.isfunction(target) or inspect.ismethod(target)):
            continue
        verdict = _reads_training(target, where, seen, depth + 1)
        if verdict.reads_training:
            return verdict
        if verdict.reads_training is None and unknown is None:
            unknown = verdict
    return unknown or _SourceVerdict(False, "")


@functools.cache
def _class_verdict(cls: type) -> _SourceVerdict:
    forward = getattr(cls, "forward", None)
    if forward is None or getattr(forward, "__module__", "") == "torch.nn.modules.module":
        return _SourceVerdict(False, "")
    return _reads_training(forward, cls, set())


def _spectral_hook(module: nn.Module) -> bool:
    try:
        from torch.nn.utils.spectral_norm import SpectralNorm
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(h, SpectralNorm) for h in module._forward_pre_hooks.values())


def has_torch_forward(module: nn.Module) -> bool:
    """True when the ``forward`` that ``module`` runs is defined by torch itself (``nn.Dropout``,
    ``nn.Sequential``, ``nn.Module``'s placeholder), not by a user class — torch's own layers
    follow the mode by construction.

    >>> import torch.nn as nn
    >>> has_torch_forward(nn.Dropout()), has_torch_forward(type("Mine", (nn.Dropout,), {"forward": id})())
    (True, False)
    """
    return _forward_owner(type(module)).__module__.startswith("torch.")


def _forward_owner(cls: type) -> type:
    return next((k for k in cls.__mro__ if "forward" in vars(k)), cls)


def classify(module: nn.Module, name: str = "") -> ModeSensitivity | None:
    """How ``module`` itself (not its children) depends on the mode, or ``None`` if it does not.

    >>> import torch.nn as nn, traineval as te
    >>> te.classify(nn.Dropout(0.2)).kind
    'dropout'
    >>> te.classify(nn.Linear(2, 2)) is None
    True
    """
    require_module(module, "module")
    cls: type = type(module)
    found = _table_row(cls)
    if found is not None:
        result = _builtin(module, found)
        if result is not None:
            return ModeSensitivity(name, module, *result)
        # a user subclass that overrides forward may add its own dependence on the mode
        if has_torch_forward(module):
            return None
    if _spectral_hook(module):
        row = ops.module_op("torch.nn.utils.parametrizations._SpectralNorm")
        assert row is not None
        return ModeSensitivity(name, module, row.kind, row.reason)
    if found is None and has_torch_forward(module):
        # torch's own modules are covered by the table; reading them would only find
        # fast-path choices (e.g. `if not self.training: use fused kernel`).
        return None
    verdict = _class_verdict(cls)
    if verdict.reads_training:
        return ModeSensitivity(name, module, "custom", verdict.detail)
    if verdict.reads_training is None:
        return ModeSensitivity(name, module, "unknown", verdict.detail)
    return None


def mode_sensitive(model: nn.Module, *, include_unknown: bool = True) -> list[ModeSensitivity]:
    """Every module of ``model`` whose behaviour depends on the mode, in registration order.

    Each entry has the module's ``name`` (``""`` for the root), the ``module``, its ``kind``
    and a ``reason``. Modules whose source cannot be read are included with kind
    ``unknown`` unless ``include_unknown=False``. Does not change the model.

    >>> import torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.LSTM(4, 4, 2, dropout=0.1))
    >>> [(s.name, s.kind) for s in te.mode_sensitive(model)]
    [('1', 'dropout'), ('2', 'recurrent')]
    """
    require_module(model)
    out = []
    for name, module in model.named_modules():
        found = classify(module, name)
        if found is not None and (include_unknown or found.kind != "unknown"):
            out.append(found)
    return out
