"""``order="layerwise"``: gather each dependency level while the levels above it already
normalise with their new statistics. Levels come from the autograd graph of one forward."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from traineval._console import Progress
from traineval.bnstats._distributed import agree_levels, together
from traineval.bnstats._pass import Run
from traineval.bnstats._stats import Layer
from traineval.errors import TraineValValueError

_REGISTRIES = frozenset({"_parameters", "_modules"})  # buffers are walked: a forward may assign one


def _detached(value: Any, depth: int = 0) -> Any:
    """``value`` with graph-attached tensors detached (in lists, tuples, dicts, 3 levels deep);
    the very same object when nothing in it is attached."""
    if isinstance(value, torch.Tensor):
        return value.detach() if value.grad_fn is not None else value
    if depth >= 3:
        return value
    if isinstance(value, list):
        items = [_detached(v, depth + 1) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            value[:] = items  # in place: other references to the list see it too
        return value
    if isinstance(value, tuple) and type(value) is tuple:
        items = [_detached(v, depth + 1) for v in value]
        return tuple(items) if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if isinstance(value, dict):
        for k, v in list(value.items()):
            new = _detached(v, depth + 1)
            if new is not v:
                value[k] = new
        return value
    return value


def detach_caches(model: nn.Module) -> None:
    """Detach every graph-attached tensor a forward left in a module attribute (a cache), so that
    the analysis forward's autograd graph is not kept alive and ``copy.deepcopy`` still works."""
    for module in model.modules():
        for key, value in list(vars(module).items()):
            if key in _REGISTRIES:
                continue
            new = _detached(value)
            if new is not value:
                object.__setattr__(module, key, new)


class LayerwiseRun(Run):
    """A :class:`Run` that can also gather level by level (:meth:`layerwise`)."""

    def layerwise(self) -> None:
        def analyse() -> tuple[dict[int, int], dict[int, int], dict[int, float]]:
            first = next(iter(self._batches()), None)
            if first is None:
                return {}, {}, {}
            self.cost += 1.0
            return self._analyse(first)

        levels, calls, positions = together(self.dist, self.device, analyse)
        levels = agree_levels(self.dist, self.device, self.layers, levels)
        if levels:  # layers the analysis did not reach go last, in a full pass
            last = max(levels.values()) + 1
            levels = {id(x.module): levels.get(id(x.module), last) for x in self.layers}
        n_rounds = max(levels.values()) + 1 if levels else 1
        total = self._total()
        handles = self._install()
        try:
            with Progress(self.progress, lines=False) as bar:
                bar.start("recalibrating BatchNorm", None if total is None else total * n_rounds)
                for level in range(n_rounds):
                    self._round(bar, [x for x in self.layers if levels.get(id(x.module), 0) == level], calls, positions)
        finally:
            for h in handles:
                h.remove()
            self.gathering = set()
            self.stop_enabled = False

    def _round(self, bar: Progress, group: list[Layer], calls: dict[int, int], positions: dict[int, float]) -> None:
        """Gather one dependency level; afterwards its layers normalise with their new statistics."""
        if not group:
            return
        self.gathering = {id(x.module) for x in group}
        known = all(k in calls for k in self.gathering)
        self.expected = {k: calls[k] for k in self.gathering} if known else {}
        self.stop_enabled = known
        fraction = max(positions.get(k, 1.0) for k in self.gathering) if known else 1.0
        self.batches = together(self.dist, self.device, lambda: self._pass(bar, fraction))
        self.rounds += 1
        self._finish(group)
        for x in group:
            x.module.training = False  # noqa: TE006 - only this BatchNorm stops updating; its parent keeps its mode

    def _analyse(self, batch: Any) -> tuple[dict[int, int], dict[int, int], dict[int, float]]:
        """Dependency level, calls per forward and stop position (share of leaf-module calls) of
        each layer, from the autograd graph of one forward (call order if there is no graph)."""
        owner: dict[Any, int] = {}  # grad_fn of a norm layer's output -> layer id
        keep: list[torch.Tensor] = []
        records: list[tuple[int, Any]] = []  # (layer id, grad_fn of its input)

        def pre(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0] if args else None
            records.append((id(module), x.grad_fn if isinstance(x, torch.Tensor) else None))

        def post(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return None
            new = out.detach().requires_grad_(True).clone()  # not a leaf: in-place ops stay legal
            if new.grad_fn is not None:
                owner[new.grad_fn] = id(module)
                keep.append(new)
            return new

        extra = [x.module.register_forward_pre_hook(pre) for x in self.layers]
        extra += [x.module.register_forward_hook(post) for x in self.layers]
        try:
            with torch.enable_grad():
                calls, positions = self._observe(batch, extra)
        except Exception:
            return self._analyse_plain(batch)  # cannot run with a graph: fall back to call order
        finally:
            detach_caches(self.model)  # whatever the forward stored must not hold this graph
        if len(keep) < len({key for key, _ in records}):
            return self._analyse_plain(batch)  # grad disabled inside the forward
        memo: dict[Any, frozenset[int]] = {}

        def deps(node: Any) -> frozenset[int]:
            if node is None:
                return frozenset()
            stack = [(node, False)]
            while stack:
                cur, expanded = stack.pop()
                if cur in memo:
                    continue
                if cur in owner:
                    memo[cur] = frozenset({owner[cur]})
                    continue
                nexts = [n for n, _ in cur.next_functions if n is not None]
                if expanded:
                    memo[cur] = frozenset().union(*(memo.get(n, frozenset()) for n in nexts))
                else:
                    stack.append((cur, True))
                    stack.extend((n, False) for n in nexts if n not in memo)
            return memo[node]

        direct: dict[int, set[int]] = {}
        for key, node in records:
            direct.setdefault(key, set()).update(deps(node))
        keep.clear()
        levels: dict[int, int] = {}
        visiting: set[int] = set()

        def level(key: int) -> int:
            if key in levels:
                return levels[key]
            if key in visiting or key in direct.get(key, ()):
                raise TraineValValueError(
                    f"order='layerwise' cannot apply: the input of layer `{self.by_id[key].name}` depends on "
                    "its own output (the layer is reused along one forward); use order='single-pass'"
                )
            visiting.add(key)
            up = [level(d) for d in direct.get(key, ())]
            visiting.discard(key)
            levels[key] = 1 + max(up) if up else 0
            return levels[key]

        for key in direct:
            level(key)
        return levels, calls, positions

    def _observe(self, batch: Any, extra: list[Any]) -> tuple[dict[int, int], dict[int, float]]:
        """Run one forward (every layer normalising with its batch); count each layer's calls and
        the share of leaf-module calls started before its last call. Removes ``extra`` hooks."""
        from torch.nn.modules import module as module_mod

        leaves = [0]
        calls: dict[int, int] = {}
        where: dict[int, int] = {}

        def count(module: nn.Module, args: tuple[Any, ...]) -> None:
            if next(iter(module.children()), None) is None:
                leaves[0] += 1

        def pre(module: nn.Module, args: tuple[Any, ...]) -> None:
            calls[id(module)] = calls.get(id(module), 0) + 1
            where[id(module)] = leaves[0]

        self.gathering = set()
        handles = [module_mod.register_module_forward_pre_hook(count)]
        handles += [x.module.register_forward_pre_hook(pre) for x in self.layers]
        handles += self._install()
        try:
            self.forward(self.model, batch)
        finally:
            for h in (*handles, *extra):
                h.remove()
        total = max(leaves[0], 1)
        return calls, {k: v / total for k, v in where.items()}

    def _analyse_plain(self, batch: Any) -> tuple[dict[int, int], dict[int, int], dict[int, float]]:
        """Fallback: one layer per round, in the order of first call (exact for a chain)."""
        with torch.no_grad():
            calls, positions = self._observe(batch, [])
        return {k: i for i, k in enumerate(calls)}, calls, positions
