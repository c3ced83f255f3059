"""The exception and warning types traineval raises.

Every misuse error subclasses both :class:`TraineValError` and the builtin a caller would
expect (``TypeError``, ``ValueError``), so ``except TypeError`` and
``except te.TraineValError`` both work.
"""

from __future__ import annotations

from typing import Any


class TraineValError(Exception):
    """Base class of every error traineval raises on purpose."""


class TraineValTypeError(TraineValError, TypeError):
    """An argument has the wrong type."""


class TraineValValueError(TraineValError, ValueError):
    """An argument has the right type but a value traineval cannot use."""


class TraineValWarning(UserWarning):
    """A mode-system problem traineval noticed but did not treat as an error."""


def describe_value(value: Any) -> str:
    """Name a value for an error message: its type, and its value when short."""
    name = type(value).__name__
    text = repr(value)
    return f"{name} {text}" if len(text) <= 40 and name not in text else name


def require_module(value: Any, what: str = "model") -> None:
    """Raise a clear :class:`TypeError` unless ``value`` is an ``nn.Module``."""
    import torch.nn as nn

    if not isinstance(value, nn.Module):
        hint = ""
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], nn.Module):
            hint = " — pass the model, not a list of its layers (or wrap them in nn.ModuleList)"
        raise TraineValTypeError(
            f"expected an nn.Module for {what}, got {describe_value(value)}{hint}"
        )
