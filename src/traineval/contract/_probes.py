"""One forward of the eval contract, watched module by module (private).

A :class:`Probe` is installed for one forward. Through :func:`traineval.core.tracing.track_modules`
it sees every module call — registered or not — before (inputs) and after (outputs), and
through :class:`~traineval.core.tracing.FunctionalWatch` every active functional dropout /
batch-norm call. A reference probe stores, for the checked samples only, the rows of every
tensor that goes into or comes out of a module; a variant probe (another seed, one sample
alone, the batch reordered) compares its rows with the reference as the forward runs and keeps
the first event, in execution order, where they part: that event names the module at fault.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from traineval.contract._outputs import MISMATCH, difference, sample_dim, tensor_leaves
from traineval.core import pins
from traineval.core.sensitivity import ModeSensitivity, classify, has_torch_forward
from traineval.core.tracing import FunctionalCall, FunctionalWatch, track_modules

_FULL_LIMIT = 1 << 16  # batch-free tensors up to this size are stored whole (determinism check)

Key = tuple[str, int, str]  # (module path, occurrence in this forward, "in" | "out")


@dataclass
class Divergence:
    """The first event where a variant forward parts from the reference."""

    order: int  # position of the event in the reference forward
    key: Key
    module: nn.Module
    path: str
    parent: tuple[nn.Module, str] | None  # the enclosing module, for an "in" event
    diff: float
    input_dim: int | None = None  # the batch dimension of the module's first input, if known
    shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (one sample, batch) when shapes part


@dataclass
class Call:
    """A module call seen by a probe."""

    path: str
    module: nn.Module
    training: bool
    parent: str | None


@dataclass
class Namer:
    """Stable, readable paths for modules: the registered name, the plain container that holds
    an unregistered module (``blocks[1]``), or ``parent.<Type>`` for one built in ``forward``."""

    model: nn.Module
    names: dict[int, str] = field(default_factory=dict)
    holders: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    held: list[nn.Module] = field(default_factory=list)  # modules in plain containers, found up front

    def __post_init__(self) -> None:
        named = list(self.model.named_modules())
        for name, module in named:
            self.names.setdefault(id(module), name)
        for owner_name, owner in named:
            prefix = f"{owner_name}." if owner_name else ""
            for attr, value in vars(owner).items():
                if attr.startswith("_") or not isinstance(value, (list, tuple, dict, set, frozenset)):
                    continue
                items = value.items() if isinstance(value, dict) else enumerate(value)
                for k, v in items:
                    if not isinstance(v, nn.Module) or id(v) in self.names or id(v) in self.holders:
                        continue
                    index = "" if isinstance(value, (set, frozenset)) else (
                        f"[{k!r}]" if isinstance(value, dict) else f"[{k}]")
                    self.holders[id(v)] = (f"{prefix}{attr}{index}", f"{prefix}{attr}", type(value).__name__)
                    self.held.append(v)

    def registered(self, module: nn.Module) -> bool:
        return id(module) in self.names

    def holder(self, module: nn.Module) -> tuple[str, str, str] | None:
        """``(path, container path, container type)`` of the plain list/tuple/dict/set attribute
        holding ``module``, e.g. ``("head.bns[0]", "head.bns", "list")``."""
        return self.holders.get(id(module))

    def path(self, module: nn.Module, parent_path: str | None) -> str:
        name = self.names.get(id(module))
        if name is not None:
            return name
        held = self.holder(module)
        if held is not None:
            return held[0]
        where = f"{parent_path}." if parent_path else ""
        return f"{where}<{type(module).__name__}>"


_RANDOM_FUNCS: dict[Any, str] = {}
for _name in ("rand", "randn", "rand_like", "randn_like", "randint", "randint_like", "randperm", "bernoulli",
              "normal", "multinomial", "poisson"):
    if hasattr(torch, _name):
        _RANDOM_FUNCS[getattr(torch, _name)] = f"torch.{_name}"
for _name in ("uniform_", "normal_", "bernoulli_", "bernoulli", "random_", "exponential_", "geometric_",
              "cauchy_", "log_normal_", "multinomial"):
    if hasattr(torch.Tensor, _name):
        _RANDOM_FUNCS[getattr(torch.Tensor, _name)] = f"Tensor.{_name}"


class _RandomWatch(TorchFunctionMode):
    """Report calls to random-number functions made by the forward code of non-torch modules."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        super().__init__()
        self.callback = callback

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = _RANDOM_FUNCS.get(func)
        if name is not None:
            self.callback(name)
        return func(*args, **(kwargs or {}))


class Probe:
    """Watch one forward. ``mode`` is ``"ref"`` (store rows), ``"repeat"`` (same batch, compare
    rows), ``"alone"`` (one sample; compare with its reference rows), ``"reorder"`` (permuted
    batch) or ``"train"`` (record calls and flags only)."""

    def __init__(self, session: Any, mode: str, *, position: int = 0, inverse: torch.Tensor | None = None) -> None:
        self.s = session
        self.mode = mode
        self.position = position  # "alone": index of the sample among the checked ones
        self.inverse = inverse  # "reorder": where each checked sample sits in the permuted batch
        self.tid = threading.get_ident()
        self.stack: list[tuple[nn.Module, str, int]] = []
        self.counts: dict[str, int] = {}
        self.order = 0
        self.calls: list[Call] = []
        self.first: Divergence | None = None
        self.functional: list[tuple[FunctionalCall, str | None]] = []
        self.random_calls: list[tuple[str, str | None]] = []
        self.raised: Divergence | None = None  # the innermost module a forward raised in
        self.shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    # ------------------------------------------------------------------ installation
    def run(self, fn: Callable[[], Any]) -> Any:
        with track_modules(self._post, pre_listener=self._pre):
            if self.mode == "train":
                return fn()
            with FunctionalWatch(self._functional), _RandomWatch(self._random):
                return fn()

    def _functional(self, call: FunctionalCall) -> None:
        if threading.get_ident() == self.tid:
            self.functional.append((call, self.stack[-1][1] if self.stack else None))

    def _random(self, name: str) -> None:
        if threading.get_ident() != self.tid or not self.stack:
            return
        module, path, _ = self.stack[-1]
        if not has_torch_forward(module):
            self.random_calls.append((name, path))

    # ------------------------------------------------------------------------- events
    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if threading.get_ident() != self.tid:
            return
        with torch._C.DisableTorchFunction():  # our own bookkeeping is not the model's computation
            self._pre_event(module, args)

    def _pre_event(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        parent = self.stack[-1] if self.stack else None
        path = self.s.namer.path(module, parent[1] if parent else None)
        count = self.counts.get(path, 0)
        self.counts[path] = count + 1
        self.stack.append((module, path, count))
        self.s.ledger.add(module)
        self.calls.append(Call(path, module, module.training, parent[1] if parent else None))
        if self.mode == "ref":
            self.s.on_ref_call(module, path, args)
        self._event(module, path, (path, count, "in"), args, parent)

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if threading.get_ident() != self.tid:
            return
        with torch._C.DisableTorchFunction():
            self._post_event(module, output)

    def _post_event(self, module: nn.Module, output: Any) -> None:
        while self.stack:
            top, path, count = self.stack.pop()
            if top is module:
                break
        else:
            return
        if output is None and self.raised is None and sys.exc_info()[0] is not None:
            key: Key = (path, count, "out")
            order = self.s.ref[key][0] if key in self.s.ref else math.inf
            self.raised = Divergence(order, key, module, path, None, math.inf)  # type: ignore[arg-type]  # no tensor: the probe raised before producing one
        self._event(module, path, (path, count, "out"), output, None)

    def _event(self, module: nn.Module, path: str, key: Key, value: Any,
               parent: tuple[nn.Module, str, int] | None) -> None:
        if self.mode == "train" or self.first is not None:
            return
        try:
            self._record(module, path, key, value, parent)
        except Exception:  # tensors we cannot slice (exotic subclasses): never break the model's forward
            if self.mode == "ref":
                self.s.ref.pop(key, None)

    def _record(self, module: nn.Module, path: str, key: Key, value: Any,
                parent: tuple[nn.Module, str, int] | None) -> None:
        leaves = tensor_leaves(value)
        if self.mode == "ref":
            self.s.ref[key] = (self.order, [self._store(t) for t in leaves])
            self.order += 1
            return
        entry = self.s.ref.get(key)
        if entry is None:
            return
        order, stored = entry
        for i, (t, ref) in enumerate(zip(leaves, stored, strict=False)):
            if ref is None:
                continue
            diff = self._compare(key, i, t, ref)
            if diff is not None:
                self.first = Divergence(order, key, module, path, (parent[0], parent[1]) if parent else None,
                                        diff, self.s.dims.get(((*key[:2], "in"), 0)), self.shapes)
                return

    def _store(self, t: torch.Tensor) -> tuple[torch.Size, dict[int, torch.Tensor], torch.Tensor | None] | None:
        if t.is_meta or t.layout != torch.strided:
            return None
        t = t.detach()
        n, sel = self.s.n, self.s.selected
        rows = {d: t.index_select(d, sel.to(t.device)).cpu() for d in range(t.dim()) if t.shape[d] == n}
        full = t.cpu().clone() if not rows and t.numel() <= _FULL_LIMIT else None
        return t.shape, rows, full

    def _compare(self, key: Key, i: int, t: torch.Tensor, ref: Any) -> float | None:
        shape, rows, full = ref
        if t.is_meta or t.layout != torch.strided:
            return None
        t = t.detach()
        s = self.s
        if self.mode == "repeat":
            if t.shape != shape:
                return float("inf")
            sel = s.selected.to(t.device)
            for d, r in rows.items():
                diff = difference(t.index_select(d, sel).cpu(), r, s.atol, s.rtol)
                if diff is not None:
                    return diff
            return difference(t.cpu(), full, s.atol, s.rtol) if full is not None else None
        if self.mode == "alone":
            d = sample_dim(shape, t.shape, s.n)
            if d == MISMATCH:
                self.shapes = (tuple(t.shape), tuple(shape))
                return math.inf
            if d is None or d not in rows:
                return None
            s.dims.setdefault((key, i), d)
            return difference(t.cpu(), rows[d].narrow(d, self.position, 1), s.atol, s.rtol)
        # reorder
        if t.shape != shape:
            return None
        d = s.dims.get((key, i))
        if d is None:
            candidates = list(rows)
            if len(candidates) != 1:
                return None
            d = candidates[0]
        assert self.inverse is not None
        return difference(t.index_select(d, self.inverse.to(t.device)).cpu(), rows[d], s.atol, s.rtol)


def sensitivity(module: nn.Module, path: str) -> ModeSensitivity | None:
    """``classify`` without the ``unknown`` verdicts (an unreadable source is no evidence)."""
    found = classify(module, path)
    return None if found is None or found.kind == "unknown" else found


def why_training(s: Any, module: nn.Module, path: str, parent: str | None) -> str:
    """Why ``module`` runs in training mode although ``model.eval()`` was called."""
    if pins.pinned_flag(module) is True:
        return f"a traineval policy ({', '.join(pins.pin_owners(module))}) keeps it in training mode"
    if s.namer.registered(module):
        override = overriding_ancestor(s.namer, path)
        if override is not None:
            name, cls = override
            return (f"`{name or '<model>'}` ({cls}) overrides train() and does not pass the mode on, "
                    "so model.eval() never reached it")
        return ("its flag was set back to training after model.eval() (a `.train()` call or "
                "`.training = True` in forward or in a hook)")
    held = s.namer.holder(module)
    if held is not None:
        return (f"it is held in the plain {held[2]} `{held[1]}`, which model.eval() does not reach "
                "(use nn.ModuleList / nn.ModuleDict)")
    where = f"`{parent}`" if parent else "the model"
    return (f"it is not a registered submodule (built inside the forward of {where}, or stored outside "
            "the model), so model.eval() never reaches it and it keeps the training mode every new module "
            "starts in")


def why_eval(s: Any, module: nn.Module, path: str) -> str:
    """Why ``module`` runs in eval mode although ``model.train()`` was called."""
    if pins.pinned_flag(module) is False:
        return f"a traineval policy ({', '.join(pins.pin_owners(module))}) keeps it in eval mode"
    override = overriding_ancestor(s.namer, path)
    if override is not None:
        name, cls = override
        return f"`{name or '<model>'}` ({cls}) overrides train() and does not pass the mode on"
    return ("its flag was set to eval after model.train() (an `.eval()` call or `.training = False` "
            "in forward or in a hook)")


def overriding_ancestor(namer: Namer, path: str) -> tuple[str, str] | None:
    """The outermost registered ancestor of ``path`` (itself excluded) whose class overrides
    ``train()``; pins (policies) are not overrides."""
    by_name = dict(namer.model.named_modules())
    parts = path.split(".") if path else []
    for depth in range(len(parts)):
        name = ".".join(parts[:depth])
        anc = by_name.get(name)
        if anc is not None and type(anc).train is not nn.Module.train:
            return name, type(anc).__name__
    return None
