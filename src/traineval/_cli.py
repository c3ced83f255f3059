"""What every ``traineval`` subcommand shares: exit codes, the usage error, and building a model
from ``MODULE:FACTORY``.

The dispatcher (:mod:`traineval.cli`) imports the subcommands; the subcommands import this
module, never the dispatcher.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """A user mistake on the command line: printed as one line, exit code 2."""


def load_object(spec: str, what: str = "factory") -> Any:
    """Import ``MODULE:NAME`` or ``path/to/file.py:NAME`` (``NAME`` may be dotted) and return it.

    Raises :class:`UsageError` with a one-line message when the module cannot be imported
    or has no such attribute. The current directory is importable, as with ``python -m``;
    a ``.py`` file is loaded with its own folder importable, as with ``python file.py``.

    >>> load_object("collections:OrderedDict").__name__
    'OrderedDict'
    """
    if ":" not in spec:
        raise UsageError(
            f"expected MODULE:{what.upper()} or path/to/file.py:{what.upper()}, got {spec!r} "
            "(e.g. mypkg.models:build)"
        )
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise UsageError(f"expected MODULE:{what.upper()}, got {spec!r} (e.g. mypkg.models:build)")
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            obj: Any = _load_file(module_name)
        else:
            if "" not in sys.path and "." not in sys.path:
                sys.path.insert(0, "")
            obj = importlib.import_module(module_name)
    except UsageError:
        raise
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        raise UsageError(f"importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _load_file(path: str) -> Any:
    """Execute the Python file at ``path`` as a module (its folder first on ``sys.path``)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"_traineval_user_{file.stem}"
    found = importlib.util.spec_from_file_location(name, file)
    if found is None or found.loader is None:
        raise UsageError(f"cannot load {path} as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        found.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def build_model(spec: str) -> Any:
    """Import ``MODULE:FACTORY``, call it without arguments, and check it returns an nn.Module."""
    import torch.nn as nn

    factory = load_object(spec)
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise UsageError(f"{spec} is a {type(factory).__name__}, not a callable factory")
    try:
        model = factory()
    except Exception as exc:
        raise UsageError(f"calling {spec}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec}() returned {type(model).__name__}, expected an nn.Module")
    return model


def print_rich_or_plain(obj: Any, plain: str, *, use_rich: bool = True) -> None:
    """Print with rich (colours) on a terminal when rich is installed, else plain text."""
    if use_rich and sys.stdout.isatty():
        try:
            from rich.console import Console
        except ImportError:
            pass
        else:
            Console().print(obj)
            return
    print(plain)
