"""The exception and warning types traineval raises.

Every misuse error subclasses both :class:`TraineValError` and the builtin a caller would
expect (``TypeError``, ``ValueError``), so ``except TypeError`` and
``except te.TraineValError`` both work.
"""

from __future__ import annotations

from typing import Any

#: Where traineval is installed from: there is no release in a package registry yet.
REPOSITORY = "https://github.com/traineval/traineval"


def install_hint(extra: str, what: str) -> str:
    """The one-line message for a missing optional dependency, with commands that work.

    Args:
        extra: the traineval extra that brings the dependency (``"demo"``, ``"lightning"``).
        what: what is missing and who needs it, e.g. ``"matplotlib (for the figures)"``.

    Returns:
        ``"<what> is not installed: pip install ..."``, for a clone and for a git install.

    >>> print(install_hint("lightning", "Lightning"))  # doctest: +ELLIPSIS
    Lightning is not installed: pip install "traineval[lightning] @ git+https://...
    """
    return (
        f'{what} is not installed: pip install "traineval[{extra}] @ git+{REPOSITORY}" '
        f"(or, in a clone of traineval: pip install '.[{extra}]')"
    )


#: What to do when torch is missing. ``pip install torch`` from PyPI is the CUDA build on
#: Linux (several GB); the CPU build comes from PyTorch's own index.
TORCH_HINT = (
    "this part of traineval needs PyTorch, which is not installed (only `traineval lint` and "
    "`traineval rules` work without it). CPU build: pip install torch --index-url "
    "https://download.pytorch.org/whl/cpu ; CUDA build on Linux: pip install torch"
)


def is_missing_torch(exc: BaseException) -> bool:
    """Whether ``exc`` is the ``ModuleNotFoundError`` of a missing torch installation.

    >>> is_missing_torch(ModuleNotFoundError("No module named 'torch'", name="torch"))
    True
    >>> is_missing_torch(ModuleNotFoundError("No module named 'rich'", name="rich"))
    False
    """
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and name.partition(".")[0] == "torch"


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
