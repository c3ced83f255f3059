"""The recalibration pass: hooks that feed each layer's statistics, iteration, the final write.

:class:`Run` gathers every layer in one pass (``order="single-pass"``); the layer-wise order
builds on it in :mod:`traineval.bnstats._layerwise`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn

from traineval import _torch
from traineval._console import Progress
from traineval.bnstats._distributed import reduce_group, together
from traineval.bnstats._stats import Layer, buffer
from traineval.bnstats.report import LayerRecalibration, RecalibrationReport
from traineval.errors import TraineValValueError, TraineValWarning


class Stop(BaseException):
    """Raised from a hook to end a forward early (``order="layerwise"``); never escapes."""


class Run:
    """One recalibration: the hooks, the passes, the reduction across ranks, the final write."""

    def __init__(
        self,
        model: nn.Module,
        data: Iterable[Any],
        num_batches: int | None,
        forward: Callable[[nn.Module, Any], Any] | None,
        layers: list[Layer],
        progress: bool,
        dist: Any,
    ) -> None:
        self.model = model
        self.data = data
        self.num_batches = num_batches
        self.user_forward = forward
        self.target = _torch.device(model)
        self.layers = layers
        self.by_id = {id(x.module): x for x in layers}
        self.progress = progress and (dist is None or dist.get_rank() == 0)
        self.dist = dist
        first = buffer(layers[0].module, "running_mean") if layers else None
        self.device = _torch.collective_device(dist, first) if layers else torch.device("cpu")
        self.batches = 0
        self.batch_index = 0  # the batch being fed, for error messages
        self.check_finite = True
        self.rounds = 0
        self.cost = 0.0
        self.gathering: set[int] = set()
        self.expected: dict[int, int] = {}  # layer id -> calls per forward to wait for
        self.seen: dict[int, int] = {}
        self.stop_enabled = False
        self.final: dict[int, tuple[torch.Tensor, torch.Tensor, int, int]] = {}  # id -> (mean, var, n, calls)

    def forward(self, model: nn.Module, batch: Any) -> Any:
        return _torch.feed(model, batch, forward=self.user_forward, target=self.target)

    # -- hooks --------------------------------------------------------------------------
    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        key = id(module)
        layer = self.by_id[key]
        gather = key in self.gathering
        # not gathered now and not final: normalise with the batch, as in training
        if not gather and not (layer.substitute and key not in self.final):
            return
        total, var, n = layer.batch(args[0] if args else None)
        if self.check_finite and not bool(torch.isfinite(total).all()):
            raise TraineValValueError(
                f"layer `{layer.name or '<model>'}` ({type(module).__name__}) received NaN or inf in "
                f"batch {self.batch_index} (counting from 0); the model was not changed "
                "(check_finite=False pools such values anyway)"
            )
        if gather:
            layer.add(total, var, n)
        if layer.substitute:
            buffer(module, "running_mean").copy_(total / n)
            buffer(module, "running_var").copy_(var)
        if self.stop_enabled and key in self.expected:
            self.seen[key] = self.seen.get(key, 0) + 1
            if all(self.seen.get(k, 0) >= c for k, c in self.expected.items()):
                raise Stop

    def _install(self) -> list[Any]:
        return [x.module.register_forward_pre_hook(self._pre_hook) for x in self.layers]

    # -- iteration ----------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        it = iter(self.data)
        return itertools.islice(it, self.num_batches) if self.num_batches is not None else it

    def _total(self) -> int | None:
        try:
            n = len(self.data)  # type: ignore[arg-type]  # a Sized loader, checked just above
        except TypeError:
            return self.num_batches
        return min(n, self.num_batches) if self.num_batches is not None else n

    def _pass(self, bar: Progress, fraction: float = 1.0) -> int:
        count = 0
        for batch in self._batches():
            self.seen = {}
            self.batch_index = count
            try:
                self.forward(self.model, batch)
                self.cost += 1.0
            except Stop:
                self.cost += fraction
            count += 1
            bar.advance()
        return count

    # -- single pass --------------------------------------------------------------------
    def single_pass(self) -> None:
        self.gathering = set(self.by_id)
        handles = self._install()
        try:
            with Progress(self.progress, lines=False) as bar:
                bar.start("recalibrating BatchNorm", self._total())
                self.batches = together(self.dist, self.device, lambda: self._pass(bar))
        finally:
            for h in handles:
                h.remove()
        self.rounds = 1
        self._finish(self.layers)

    # -- reduction and write --------------------------------------------------------------
    def _finish(self, group: list[Layer]) -> None:
        """Combine the group's statistics (over ranks), write them, remember them as final."""
        like = buffer(group[0].module, "running_mean")
        dev = self.device
        local = [x.local(like) for x in group]
        sums = [s.to(dev) for s, _ in local]
        m2s = [m.to(dev) for _, m in local]
        head = torch.tensor(
            [float(self.batches)] + [float(x.n) for x in group] + [float(x.calls) for x in group],
            dtype=torch.float64,
            device=dev,
        )
        g = len(group)
        if self.dist is not None:
            head, gsums, gm2s = reduce_group(self.dist, group, head, sums, m2s)
        else:
            gsums, gm2s = sums, m2s
        if head[0].item() == 0:
            raise TraineValValueError(
                "data yielded no batches" + (" on any rank" if self.dist is not None else "")
                + "; the model was not changed"
            )
        counts, ncalls = head[1 : 1 + g].tolist(), head[1 + g :].tolist()
        for x, gs, gm2, n, c in zip(group, gsums, gm2s, counts, ncalls, strict=True):
            if n == 0:
                continue
            mean, var = gs / n, gm2 / (n - 1)
            self.final[id(x.module)] = (mean, var, int(n), int(c))
            m = x.module
            buffer(m, "running_mean").copy_(mean)
            buffer(m, "running_var").copy_(var)

    def report(self, frozen: list[str], order: str, dropout: str, world: int) -> RecalibrationReport:
        """Set ``num_batches_tracked``, put back layers not reached, and describe what changed."""
        out = RecalibrationReport(
            frozen=list(frozen),
            batches=self.batches,
            order=order,
            dropout=dropout,
            rounds=self.rounds,
            forward_equivalents=self.cost,
            world_size=world,
        )
        for x in self.layers:
            got = self.final.get(id(x.module))
            if got is None:
                x.restore()  # not reached: statistics and counter untouched
                out.not_reached.append(x.name)
                continue
            mean, var, n, calls = got
            old_mean = x.saved["running_mean"].to(device=mean.device, dtype=torch.float64)
            old_var = x.saved["running_var"].to(device=mean.device, dtype=torch.float64)
            eps = float(getattr(x.module, "eps", 0.0))
            shift = ((mean - old_mean).abs() / (old_var + eps).sqrt()).max().item()
            ratio = var / old_var
            nbt = getattr(x.module, "num_batches_tracked", None)
            if isinstance(nbt, torch.Tensor):
                nbt.fill_(calls)
            out.layers.append(
                LayerRecalibration(
                    name=x.name,
                    type_name=type(x.module).__name__,
                    num_features=x.num_features,
                    samples=n,
                    calls=calls,
                    mean_shift=float(shift),
                    var_ratio_min=float(ratio.min().item()),
                    var_ratio_max=float(ratio.max().item()),
                )
            )
        if out.not_reached and not out.layers:
            warnings.warn(
                "recalibrate_batchnorm: the forward reached none of the normalisation layers; "
                "statistics unchanged (check forward=)",
                TraineValWarning,
                stacklevel=3,
            )
        return out
