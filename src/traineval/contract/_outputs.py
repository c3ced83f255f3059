"""Nested inputs and outputs for the eval contract: flatten, slice a batch, compare (private).

Outputs may be tensors, tuples (named or not), lists, dicts, dataclasses or Hugging Face-style
``ModelOutput`` objects, nested; every leaf gets a readable path such as ``output.logits`` or
``output[1][0]``. Inputs are sliced along the batch dimension without knowing their structure.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

import torch

from traineval.errors import TraineValTypeError

_SCALARS = (bool, int, float, complex, str, bytes, type(None), enum.Enum, torch.dtype, torch.device)


def tensor_leaves(obj: Any, _depth: int = 0) -> list[torch.Tensor]:
    """Every tensor inside ``obj`` (tuples, lists, dicts, dataclasses), in a stable order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if _depth > 32:
        return []
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in tensor_leaves(v, _depth + 1)]
    if isinstance(obj, (tuple, list)):
        return [t for v in obj for t in tensor_leaves(v, _depth + 1)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in tensor_leaves(getattr(obj, f.name, None), _depth + 1)]
    return []


def flatten(obj: Any, path: str = "output", _depth: int = 0) -> list[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf of a nested output; raise naming the path of a leaf that
    cannot be compared (an object without a value equality that holds no attributes).

    Objects without value equality, such as Hugging Face KV caches, are compared by their
    public attributes (``output['cache'].layers[0].keys``).

    >>> import torch
    >>> class Cache:
    ...     def __init__(self): self.keys, self._seen = torch.zeros(2, 3), 1
    >>> [p for p, _ in flatten({"logits": torch.ones(2), "cache": Cache()})]
    ["output['logits']", "output['cache'].keys"]
    """
    if isinstance(obj, (torch.Tensor, *_SCALARS)):
        return [(path, obj)]
    if _depth > 32:
        raise TraineValTypeError(f"{path} is nested more than 32 levels deep; pass forward= returning the tensors")
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):
        return [(path, torch.as_tensor(obj))]
    if isinstance(obj, Mapping):
        return [(p, v) for k, item in obj.items() for p, v in flatten(item, f"{path}[{k!r}]", _depth + 1)]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return [(p, v) for k in obj._fields for p, v in flatten(getattr(obj, k), f"{path}.{k}", _depth + 1)]
    if isinstance(obj, (tuple, list)):
        return [(p, v) for i, item in enumerate(obj) for p, v in flatten(item, f"{path}[{i}]", _depth + 1)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [
            (p, v)
            for f in dataclasses.fields(obj)
            for p, v in flatten(getattr(obj, f.name, None), f"{path}.{f.name}", _depth + 1)
        ]
    if type(obj).__eq__ is object.__eq__ and hasattr(obj, "__dict__") and not callable(obj):
        # an object without value equality (a KV cache, a plain record): compared by what it holds
        return [
            (p, v)
            for k, item in sorted(vars(obj).items())
            if not k.startswith("_") and not callable(item) and not isinstance(item, type)
            for p, v in flatten(item, f"{path}.{k}", _depth + 1)
        ]
    if type(obj).__eq__ is object.__eq__:
        raise TraineValTypeError(
            f"cannot compare {path}: it is a {type(obj).__name__}, which has no value equality; "
            "return tensors (or tuples, dicts, dataclasses of them), or pass forward= that returns "
            "the tensors to compare"
        )
    return [(path, obj)]


def batch_size(example: Any, batch_dim: int) -> int:
    """The size of the batch dimension: that of the first tensor with a ``batch_dim``."""
    for t in tensor_leaves(example):
        if t.dim() > batch_dim:
            return int(t.shape[batch_dim])
    raise TraineValTypeError(
        f"the example has no tensor with a dimension {batch_dim} (batch_dim={batch_dim}); pass a batch "
        "of samples as a tensor, a tuple or a dict of tensors"
    )


def take(obj: Any, index: torch.Tensor, batch_dim: int, n: int, _depth: int = 0) -> Any:
    """``obj`` with every per-sample tensor restricted to the samples ``index`` (in that order).

    A tensor is per-sample when its size along ``batch_dim`` is ``n``; a tensor with fewer
    dimensions than ``batch_dim + 1`` whose first dimension is ``n`` (lengths, labels) too.
    Everything else (masks shared by the batch, lookup tables, numbers) is passed unchanged.
    """
    if isinstance(obj, torch.Tensor):
        if obj.dim() > batch_dim and obj.shape[batch_dim] == n:
            return obj.index_select(batch_dim, index.to(obj.device))
        if 1 <= obj.dim() <= batch_dim and obj.shape[0] == n:
            return obj.index_select(0, index.to(obj.device))
        return obj
    if _depth > 32:
        return obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(take(v, index, batch_dim, n, _depth + 1) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(take(v, index, batch_dim, n, _depth + 1) for v in obj)
    if isinstance(obj, Mapping):
        items = {k: take(v, index, batch_dim, n, _depth + 1) for k, v in obj.items()}
        try:
            return type(obj)(items)  # type: ignore[call-arg]  # a Mapping subclass built from a dict
        except Exception:
            return items
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        new = copy.copy(obj)
        for f in dataclasses.fields(obj):
            object.__setattr__(new, f.name, take(getattr(obj, f.name, None), index, batch_dim, n, _depth + 1))
        return new
    return obj


# ----------------------------------------------------------------------------- comparison
def default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for ``dtype``: loose enough for batch-size-dependent kernels, tight
    enough that a BatchNorm in training mode or a live dropout is far outside."""
    if dtype in (torch.float16, torch.bfloat16):
        return 1e-2, 1e-2
    if dtype in (torch.float64, torch.complex128):
        return 1e-9, 1e-7
    return 1e-4, 1e-4


def difference(a: Any, b: Any, atol: float | None, rtol: float | None) -> float | None:
    """``None`` when ``a`` matches reference ``b``; else the largest absolute difference
    (``inf`` for a different shape, type or value of a non-numeric leaf).

    Tensors match elementwise when ``|a - b| <= atol * max(1, rms(b)) + rtol * |b|``: the
    absolute term scales with the tensor's magnitude so that large activations are not held to
    an absolute 1e-4. NaNs match NaNs at the same positions.
    """
    if isinstance(b, torch.Tensor):
        if not isinstance(a, torch.Tensor) or a.shape != b.shape:
            return math.inf
        if a.dtype.is_complex or b.dtype.is_complex:
            a, b = torch.view_as_real(a.resolve_conj()), torch.view_as_real(b.resolve_conj())
        if not (a.is_floating_point() or b.is_floating_point()):
            if torch.equal(a.cpu(), b.cpu()):
                return None
            return float((a.cpu().double() - b.cpu().double()).abs().max())
        if b.numel() == 0:
            return None
        default = default_tolerance(b.dtype)
        at = default[0] if atol is None else atol
        rt = default[1] if rtol is None else rtol
        work = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
        a_, b_ = a.detach().cpu().to(work), b.detach().cpu().to(work)
        diff = (a_ - b_).abs()
        scale = max(1.0, float(b_.pow(2).mean().sqrt()))
        if bool((diff <= at * scale + rt * b_.abs()).all()):  # fast path: all finite and close
            return None
        nan_a, nan_b = a_.isnan(), b_.isnan()
        if not torch.equal(nan_a, nan_b):
            return math.inf
        finite = a_.isfinite() & b_.isfinite()
        if not torch.equal(a_[~finite & ~nan_b], b_[~finite & ~nan_b]):
            return math.inf  # infinities must match exactly
        a_, b_ = a_[finite], b_[finite]
        if b_.numel() == 0:
            return None
        scale = max(1.0, float(b_.pow(2).mean().sqrt()))
        diff = (a_ - b_).abs()
        if bool((diff <= at * scale + rt * b_.abs()).all()):
            return None
        return float(diff.max())
    if isinstance(b, float) and isinstance(a, (int, float)):
        at, rt = default_tolerance(torch.float32) if atol is None else (atol, rtol or 0.0)
        if math.isnan(a) and math.isnan(b):
            return None
        return None if math.isclose(a, b, rel_tol=rt, abs_tol=at) else abs(a - b)
    try:
        same = bool(a == b) and type(a) is type(b)
    except Exception:
        same = False
    return None if same else math.inf


MISMATCH = -1


def sample_dim(ref_shape: torch.Size, one_shape: torch.Size, n: int) -> int | None:
    """The batch dimension of a tensor, learned from its shape for the whole batch
    (``ref_shape``) and for one sample (``one_shape``); ``None`` when it has none (same
    shape), :data:`MISMATCH` when the shapes differ otherwise (a ``squeeze()`` that dropped
    the batch dimension of one sample, a reshape with a hard-coded batch size)."""
    if len(ref_shape) != len(one_shape):
        return MISMATCH
    changed = [d for d, (r, o) in enumerate(zip(ref_shape, one_shape, strict=True)) if r != o]
    if not changed:
        return None
    if all(ref_shape[d] == n and one_shape[d] == 1 for d in changed):
        return changed[0]
    return MISMATCH
