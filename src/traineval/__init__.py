"""traineval: PyTorch's train/eval mode system, controlled, corrected, checked and visible.

>>> import traineval as te
>>> te.modes(te.examples.mlp())[""]
True

The public names are declared once, in ``__init__.pyi`` beside this file (the pattern of
scientific Python's ``lazy_loader.attach_stub``, SPEC 1). Type checkers read it; this module
reads it to load each name from its module on first use (PEP 562), so that ``traineval lint``
and ``traineval rules`` start without importing torch.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def _public_names() -> tuple[dict[str, str], dict[str, str]]:
    """(name -> defining module, submodule name -> module), read from ``__init__.pyi``."""
    names: dict[str, str] = {}
    submodules: dict[str, str] = {}
    stub = ast.parse(Path(__file__).with_suffix(".pyi").read_text(encoding="utf-8"))
    for node in stub.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.asname != alias.name:
                    raise ImportError(f"traineval/__init__.pyi: write `{alias.name} as {alias.name}`")
                if node.module == __name__:
                    submodules[alias.name] = f"{__name__}.{alias.name}"
                else:
                    names[alias.name] = node.module
    return names, submodules


_EXPORTS, _SUBMODULES = _public_names()
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    if name not in _EXPORTS:
        raise AttributeError(f"module 'traineval' has no attribute {name!r}")
    try:
        module = importlib.import_module(_EXPORTS[name])
    except ModuleNotFoundError as exc:
        from traineval.errors import TORCH_HINT, is_missing_torch

        if not is_missing_torch(exc):
            raise
        raise ModuleNotFoundError(f"traineval.{name}: {TORCH_HINT}", name="torch") from None
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
