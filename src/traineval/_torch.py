"""Facts about torch objects that several capabilities need, each defined once: which module a
wrapper runs, where a model lives, which rank this process is, and how to feed a batch to a
model.

>>> import torch, torch.nn as nn
>>> model = nn.Linear(3, 2)
>>> unwrap(nn.DataParallel(model)) is model, device(model)
(True, device(type='cpu'))
>>> feed(model, (torch.ones(4, 3), torch.zeros(4))).shape     # (inputs, labels): the inputs
torch.Size([4, 2])
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

import torch
import torch.nn as nn

from traineval.errors import TraineValTypeError, TraineValValueError

Unpack = Literal["first", "all"]


# ------------------------------------------------------------------------------- wrappers
def unwrap(model: nn.Module) -> nn.Module:
    """The module a wrapper runs: through ``DistributedDataParallel``, ``DataParallel`` and
    ``torch.compile``'s ``OptimizedModule``, any number of times.

    FSDP is not unwrapped: its inner module holds only this rank's shard of the parameters
    (see :func:`fsdp_kind`).

    >>> import torch.nn as nn
    >>> inner = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(nn.DataParallel(inner))) is inner
    True
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = cast(nn.Module, model.module)
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = cast(nn.Module, model._orig_mod)
        else:
            return model


def fsdp_kind(model: nn.Module) -> str | None:
    """``"FullyShardedDataParallel"`` or ``"fully_shard"`` when FSDP shards ``model`` or one of
    its submodules, else ``None``.

    >>> import torch.nn as nn
    >>> fsdp_kind(nn.Linear(2, 2)) is None
    True
    """
    for module in model.modules():
        names = {cls.__name__ for cls in type(module).__mro__}
        if "FullyShardedDataParallel" in names:
            return "FullyShardedDataParallel"
        if "FSDPModule" in names:
            return "fully_shard"
    return None


def device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer (``None`` for a model with neither).

    >>> import torch.nn as nn
    >>> device(nn.ReLU()) is None
    True
    """
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return None


def to_device(value: Any, target: torch.device | None) -> Any:
    """``value`` with every tensor in it (tuples, namedtuples, lists, dicts) moved to ``target``.

    >>> import torch
    >>> to_device({"x": [torch.ones(1)]}, torch.device("cpu"))["x"][0].device
    device(type='cpu')
    """
    if target is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(target) if value.device != target else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(to_device(v, target) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, target) for v in value)
    if isinstance(value, Mapping):
        moved = {k: to_device(v, target) for k, v in value.items()}
        try:
            return type(value)(moved)  # type: ignore[call-arg]  # a dict subclass (BatchEncoding)
        except TypeError:
            return moved
    return value


# ---------------------------------------------------------------------------- distributed
def distributed() -> tuple[Any, int, int]:
    """``(torch.distributed, rank, world size)`` inside an initialised process group, else
    ``(None, 0, 1)``.

    >>> distributed()
    (None, 0, 1)
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def collective_device(dist: Any, like: torch.Tensor | None = None) -> torch.device:
    """Where tensors for a collective must live: the CPU for gloo (or no process group), else
    ``like``'s device, else the current CUDA device for NCCL.

    >>> collective_device(None)
    device(type='cpu')
    """
    if dist is None or dist.get_backend() == "gloo":
        return torch.device("cpu")
    if like is not None:
        return like.device
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -------------------------------------------------------------------------------- batches
def arguments(batch: Any, unpack: Unpack = "first") -> tuple[tuple[Any, ...], dict[str, Any], str]:
    """How a batch becomes a model call: ``(args, kwargs, description)``.

    A tensor is the one argument, and a mapping gives keyword arguments (Hugging Face
    batches). For the rest it depends on what ``batch`` is:

    * ``unpack="first"``, a batch from a data loader: a tuple, list or namedtuple is
      ``(inputs, targets, ...)`` and its first element is fed; a dataclass gives its fields
      as keyword arguments;
    * ``unpack="all"``, an example of the model's arguments: a plain tuple is the positional
      arguments, anything else (a list, a namedtuple, a dataclass) is the one argument.

    >>> import torch
    >>> arguments((torch.ones(1), torch.zeros(1)))[2], arguments((1, 2), "all")[2]
    ('model(batch[0])', 'model(*batch)')
    """
    if isinstance(batch, torch.Tensor):
        return (batch,), {}, "model(batch)"
    if isinstance(batch, Mapping):
        return (), dict(batch), "model(**batch)"
    if unpack == "all":
        if isinstance(batch, tuple) and not hasattr(batch, "_fields"):
            return tuple(batch), {}, "model(*batch)"
        return (batch,), {}, "model(batch)"
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
        return (), fields, "model(**fields of the dataclass)"
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise TraineValValueError("a batch is an empty tuple/list; nothing to feed the model")
        return (batch[0],), {}, "model(batch[0])"
    raise TraineValTypeError(
        f"cannot feed a batch of type {type(batch).__name__} to the model; "
        "pass forward=lambda model, batch: model(...)"
    )


def feed(
    model: nn.Module,
    batch: Any,
    *,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    target: torch.device | None = None,
    unpack: Unpack = "first",
) -> Any:
    """Run ``model`` on ``batch``: through ``forward(model, batch)`` when given, else as
    :func:`arguments` says, with tensors moved to ``target`` first.

    When the call fails because ``model.forward`` cannot take the arguments, the error says
    what was tried and suggests ``forward=``.

    >>> import torch, torch.nn as nn
    >>> feed(nn.Linear(2, 1), {"x": torch.ones(3, 2)}, forward=lambda m, b: m(b["x"])).shape
    torch.Size([3, 1])
    """
    if forward is not None:
        return forward(model, batch)
    args, kwargs, how = arguments(to_device(batch, target), unpack)
    try:
        return model(*args, **kwargs)
    except TypeError as exc:
        problem = _mismatch(model, args, kwargs)
        if problem is None:
            raise
        keys = f" with the keys {', '.join(map(repr, kwargs))}" if kwargs else ""
        raise TraineValTypeError(
            f"could not feed the batch: traineval called {how}{keys}, but "
            f"{type(unwrap(model)).__name__}.forward{problem}; pass "
            "forward=lambda model, batch: model(...) to say how the model takes a batch"
        ) from exc


def _mismatch(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why ``model.forward`` cannot bind these arguments (``None`` if it can, or if unknown)."""
    try:
        signature = inspect.signature(unwrap(model).forward)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"{signature} does not take them ({exc})"
    return None
