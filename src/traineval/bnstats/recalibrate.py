"""Population ("precise") BatchNorm statistics: :func:`recalibrate_batchnorm`.

PyTorch's BatchNorm does not keep the statistics of the training data: it keeps an
exponential moving average (``momentum=0.1``) of per-batch statistics, taken on weights that
were still moving. Recomputing the statistics of every value each layer receives, with the
weights fixed, is "PreciseBN" (Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021, Sec. 3).

>>> import torch, traineval as te, traineval.examples as ex
>>> model = ex.mlp()
>>> batches = [torch.randn(n, 20) for n in (32, 32, 7)]      # unequal sizes are weighted right
>>> report = te.recalibrate_batchnorm(model, batches, progress=False)
>>> report.layers[0].samples                                  # every value of the pass counts
71
>>> model.training, model[3].training                         # modes are left as they were
(True, True)
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from traineval import _torch
from traineval._console import Progress
from traineval.core.modes import ModeSnapshot
from traineval.core.sensitivity import has_torch_forward, is_norm_with_running_stats
from traineval.errors import (
    TraineValError,
    TraineValTypeError,
    TraineValValueError,
    TraineValWarning,
    describe_value,
    require_module,
)
from traineval.runtime.allow import allow

_DROPOUT = ("off", "on")
_ORDERS = ("single-pass", "layerwise")
_EXACT = (torch.float32, torch.float64)


# ------------------------------------------------------------------------------------ report
@dataclass(frozen=True)
class LayerRecalibration:
    """What recalibration did to one normalisation layer.

    ``samples`` is the number of values per channel pooled (batch × spatial/sequence
    positions, over all ranks); ``calls`` the number of times the layer ran during the pass
    (it becomes ``num_batches_tracked``). ``mean_shift`` is the largest move of a channel's
    mean in units of its old standard deviation; ``var_ratio_min``/``var_ratio_max`` bound
    new variance / old variance over the channels.
    """

    name: str
    type_name: str
    num_features: int
    samples: int
    calls: int
    mean_shift: float
    var_ratio_min: float
    var_ratio_max: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (non-finite floats become ``None``)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vars(self).items()}


@dataclass
class RecalibrationReport:
    """The outcome of :func:`recalibrate_batchnorm`: one entry per recalibrated layer.

    ``not_reached`` lists layers the pass never called (their statistics are unchanged);
    ``frozen`` lists layers a policy or the model's own ``train()`` keeps in eval mode, which
    are left alone. ``batches`` is this process's number of batches per pass;
    ``forward_equivalents`` the cost of the whole call measured in forwards over those batches
    (1.0 per batch for ``order="single-pass"``; see :func:`recalibrate_batchnorm`).
    """

    layers: list[LayerRecalibration] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    batches: int = 0
    order: str = "single-pass"
    dropout: str = "off"
    rounds: int = 0
    forward_equivalents: float = 0.0
    world_size: int = 1

    def __len__(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, cost, and one dict per layer."""
        return {
            "order": self.order,
            "dropout": self.dropout,
            "batches": self.batches,
            "rounds": self.rounds,
            "forward_equivalents": round(self.forward_equivalents, 4),
            "world_size": self.world_size,
            "layers": [layer.to_dict() for layer in self.layers],
            "not_reached": list(self.not_reached),
            "frozen": list(self.frozen),
        }

    def __str__(self) -> str:
        head = (
            f"recalibrated {len(self.layers)} normalisation layer{'s' if len(self.layers) != 1 else ''} "
            f"over {self.batches} batch{'es' if self.batches != 1 else ''}"
            + (f" x {self.world_size} ranks" if self.world_size > 1 else "")
            + f" (order={self.order}, dropout={self.dropout}, "
            f"{self.rounds} round{'s' if self.rounds != 1 else ''}, "
            f"{self.forward_equivalents:.2f} forward-equivalents)"
        )
        lines = [head]
        if self.layers:
            width = max(len("layer"), *(len(x.name or "<model>") for x in self.layers))
            lines.append(f"  {'layer':<{width}}  {'type':<16} {'samples':>10} {'mean shift':>11}  var ratio")
            for x in self.layers:
                lines.append(
                    f"  {x.name or '<model>':<{width}}  {x.type_name:<16} {x.samples:>10} "
                    f"{x.mean_shift:>9.3g} σ  {x.var_ratio_min:.3g} … {x.var_ratio_max:.3g}"
                )
        if self.not_reached:
            lines.append("  not reached (statistics unchanged): " + ", ".join(self.not_reached))
        if self.frozen:
            lines.append("  frozen, left alone: " + ", ".join(self.frozen))
        return "\n".join(lines)


# ------------------------------------------------------------------------------ internals
class _Stop(BaseException):
    """Raised from a hook to end a forward early (``order="layerwise"``); never escapes."""


class _Layer:
    """One normalisation layer: its saved state and its float64 sufficient statistics.

    Statistics are kept relative to a per-channel shift ``k`` (the first batch's mean), so
    that no sum loses precision however large the mean is against the spread: ``s`` is
    Σ(x − k), ``t`` is Σ_batches (Σ_batch(x − k))² / n_batch and ``w`` is Σ_batches of the
    batch's centred sum of squares. Then mean = k + s/n and M2 = w + t − s²/n.
    """

    def __init__(self, name: str, module: nn.Module) -> None:
        from torch.nn.modules.batchnorm import _BatchNorm
        from torch.nn.modules.instancenorm import _InstanceNorm

        self.name = name
        self.module = module
        self.instance = isinstance(module, _InstanceNorm)
        # torch's own BatchNorm forward in eval mode normalises with the buffers: we put the
        # batch's statistics there, which reproduces train-mode output without the batch
        # statistics being computed twice and without any collective (SyncBatchNorm).
        self.substitute = isinstance(module, _BatchNorm) and has_torch_forward(module)
        self.saved = {k: b.detach().clone() for k, b in module.named_buffers(recurse=False) if b is not None}
        self.num_features = int(module.running_mean.numel())
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.calls = 0
        self.k: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.w: torch.Tensor | None = None

    def restore(self) -> None:
        for key, value in self.saved.items():
            buf = getattr(self.module, key, None)
            if isinstance(buf, torch.Tensor) and buf.shape == value.shape:
                buf.copy_(value)
            else:  # replaced meanwhile: put the original back
                setattr(self.module, key, value.clone())

    def batch(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Check a layer input; return (float64 sum, biased variance, values per channel)."""
        where = f"layer `{self.name or '<model>'}` ({type(self.module).__name__})"
        if not isinstance(x, torch.Tensor):
            raise TraineValTypeError(f"{where} received {describe_value(x)}, expected a tensor")
        x = x.detach()
        if not x.is_floating_point():
            raise TraineValTypeError(f"{where} received a {x.dtype} tensor, expected floating point")
        cdim = 0 if self.instance and x.dim() == self.module._get_no_batch_dim() else 1
        if x.dim() < 2 or x.shape[cdim] != self.num_features:
            raise TraineValValueError(
                f"{where} received input of shape {tuple(x.shape)}, expected {self.num_features} "
                f"channels in dimension {cdim}"
            )
        per_channel = x.numel() // self.num_features
        per_group = per_channel // (x.shape[0] if self.instance and cdim == 1 else 1)
        if per_group <= 1:
            unit = "spatial element per instance" if self.instance else "value per channel"
            raise TraineValValueError(
                f"{where} received one {unit} (input shape {tuple(x.shape)}): batch statistics "
                "are undefined — use batches of at least 2 samples (or more positions)"
            )
        dims = tuple(d for d in range(x.dim()) if d != cdim)
        xv = x if x.dtype in _EXACT else x.float()
        # exact mean, however far from zero: float64 accumulation (over the contiguous inner
        # dims first when it can: ~5x faster on CPU for conv feature maps than over (0, 2, 3))
        if cdim == 1 and x.dim() > 2 and x.is_contiguous():
            total = x.flatten(2).sum(2, dtype=torch.float64).sum(0)
        else:
            total = x.sum(dims, dtype=torch.float64)
        var = None
        if cdim == 1:
            # BatchNorm's own statistics kernel: 2-8x faster on CPU than var_mean over these
            # dims, and as exact unless a channel's mean dwarfs its spread (|mean| > 100 std),
            # where its rounding grows as (mean/std)^2; those batches take var_mean below.
            _, fast = torch.batch_norm_update_stats(xv, None, None, 1.0)
            mean = total / per_channel
            if not bool((mean * mean > 1e4 * fast.to(torch.float64)).any()):
                var = fast
        if var is None:
            var, _ = torch.var_mean(xv, dims, correction=0)  # one Welford pass (double accumulators on CPU)
        return total, var, per_channel

    def add(self, total: torch.Tensor, var: torch.Tensor, n: int) -> None:
        if self.k is None:
            self.k = total / n
            self.s = torch.zeros_like(total)
            self.t = torch.zeros_like(total)
            self.w = torch.zeros_like(total)
        d = torch.sub(total, self.k, alpha=n)  # Σ(x − k) of this batch
        self.s.add_(d)  # type: ignore[union-attr]
        self.t.addcmul_(d, d, value=1.0 / n)  # type: ignore[union-attr]
        self.w.add_(var.to(torch.float64), alpha=n)  # type: ignore[union-attr]
        self.n += n
        self.calls += 1

    def local(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σx, M2) of this process, float64 (zeros when the layer was not reached)."""
        if self.k is None:
            zero = torch.zeros(self.num_features, dtype=torch.float64, device=like.device)
            return zero, zero.clone()
        s, t, w, n = self.s, self.t, self.w, self.n
        m2 = (w + t - s * s / n).clamp_min_(0.0)  # type: ignore[operator]
        return self.k * n + s, m2  # type: ignore[operator]


class _RemoteFailure(TraineValError, RuntimeError):
    """Recalibration failed on another rank; this rank restored its model."""


# -------------------------------------------------------------------------- the public call
def recalibrate_batchnorm(
    model: nn.Module,
    data: Iterable[Any],
    *,
    num_batches: int | None = None,
    forward: Callable[[nn.Module, Any], Any] | None = None,
    dropout: str = "off",
    order: str = "single-pass",
    progress: bool = True,
) -> RecalibrationReport:
    """Set every BatchNorm's running statistics to the exact mean and variance of its inputs over ``data``.

    >>> import torch, traineval as te, traineval.examples as ex
    >>> model = ex.small_resnet()
    >>> data = [(torch.randn(8, 3, 32, 32), torch.zeros(8)) for _ in range(3)]   # (input, label)
    >>> report = te.recalibrate_batchnorm(model, data, progress=False)
    >>> len(report.layers), report.layers[0].samples                # 3 batches × 8 × 32 × 32
    (9, 24576)
    >>> report = te.recalibrate_batchnorm(model, data, order="layerwise", progress=False)
    >>> report.rounds, report.forward_equivalents > 3               # one round per depth level
    (7, True)

    **What it computes.** Afterwards each layer's ``running_mean``/``running_var`` are the mean
    and variance of every value the layer received during the pass, per channel: batches of
    unequal size weigh by their size, and spatial or sequence positions count as samples.
    ``running_var`` is the *unbiased* variance ``M2 / (n − 1)`` of all ``n`` values — the
    convention of PyTorch's ``running_var`` (which averages unbiased batch variances); for
    ``n`` in the thousands the two conventions differ by less than 0.1 %. Unlike averaging
    per-batch variances (``torch.optim.swa_utils.update_bn``), the spread of the batch means
    is included (Wu & Johnson 2021, appendix). Sums are accumulated in float64 whatever the
    model's dtype. A layer called several times in one forward (shared weights) pools the
    values of every call. InstanceNorm layers with ``track_running_stats=True`` get the mean
    and variance over all their values too (PyTorch's moving average of *per-instance*
    variances leaves out the spread between instances).

    **Modes.** With ``dropout="off"`` (the default) the model is put in the modes
    ``model.eval()`` gives it — dropout off, policies respected — and only the normalisation
    layers gather batch statistics and normalise with them, as in training: the statistics
    are those inference will feed the layers (Li et al., CVPR 2019, on the variance shift
    between dropout and BatchNorm). ``dropout="on"`` runs the rest of the model in the modes
    ``model.train()`` gives it, as older tools do. Layers kept in eval mode during training
    (a ``te.freeze_batchnorm`` policy, a ``train()`` override) are frozen: left alone and
    listed in ``report.frozen``. ``(Distributed)DataParallel`` wrappers are unwrapped and the
    pass runs on ``model.module``.

    **Order.** ``order="single-pass"`` gathers every layer in one pass over ``data``, each
    layer's upstream normalisation layers normalising with batch statistics as in training.
    ``order="layerwise"`` gathers each layer while every normalisation layer upstream of it
    already normalises with its *new* population statistics — what inference will feed it.
    The dependency levels are read from the autograd graph of one analysis forward; level
    ``k`` is gathered in round ``k`` and each forward stops as soon as that round's layers
    have run. Its cost, ``report.forward_equivalents``, is one analysis forward plus
    Σ_rounds batches × (share of the forward run before the stop, counted in leaf-module
    calls) — between 1 and ``rounds`` full passes (about ``rounds / 2`` for a plain chain).
    A layer whose input depends on its own output is refused for ``"layerwise"``. The data
    must be iterable several times (a list, a DataLoader).

    **State.** On success ``num_batches_tracked`` becomes the number of batches that fed the
    layer (over all ranks), so that a later ``momentum=None`` cumulative average continues
    from these statistics; momentum, parameters and every module's mode are left as they
    were. Layers not reached keep their statistics. If anything raises — a bad batch, out of
    memory, ``KeyboardInterrupt`` — every buffer and mode is restored bit for bit.

    **Distributed.** Inside an initialised ``torch.distributed`` process group each rank
    passes its own shard; counts, sums and centred second moments are then all-reduced, so
    every rank ends with identical statistics equal to one process over the union of the
    shards, whatever their sizes (a rank may even have none). No collective is issued per
    batch — SyncBatchNorm normalises with the local batch during the pass — so unequal
    shards cannot deadlock. Every rank must call this function. A failure on one rank
    (an exception) makes every rank restore its model and raise; a ``KeyboardInterrupt``
    restores the local model at once and leaves the others to the process group's timeout.

    Args:
        model: the model (not changed except for the statistics, see above).
        data: an iterable of batches: tensors, tuples/lists (the first element is fed),
            dicts (fed as keyword arguments), or anything ``forward`` understands. Tensors are
            moved to the model's device.
        num_batches: use at most this many batches (per pass and per rank).
        forward: ``forward(model, batch)`` runs the model on one batch.
        dropout: ``"off"`` (inference-consistent) or ``"on"`` (training modes elsewhere).
        order: ``"single-pass"`` or ``"layerwise"``.
        progress: show a progress bar when stderr is a terminal (tqdm or rich, if installed).

    Returns:
        A :class:`RecalibrationReport`: per layer, samples, calls, how far the mean moved (in
        old standard deviations) and the ratio new/old variance; layers not reached; frozen
        layers; the cost. Gradients are never tracked (``torch.no_grad``).
    """
    require_module(model)
    if dropout not in _DROPOUT:
        raise TraineValValueError(f"dropout must be 'off' or 'on', got {describe_value(dropout)}")
    if order not in _ORDERS:
        raise TraineValValueError(f"order must be 'single-pass' or 'layerwise', got {describe_value(order)}")
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1
    ):
        raise TraineValValueError(f"num_batches must be a positive int or None, got {describe_value(num_batches)}")
    if forward is not None and not callable(forward):
        raise TraineValTypeError(
            f"forward must be a callable forward(model, batch), got {describe_value(forward)}"
        )
    if isinstance(data, (torch.Tensor, str, bytes)) or not isinstance(data, Iterable):
        raise TraineValTypeError(
            f"data must be an iterable of batches (a DataLoader, a list of tensors), got {describe_value(data)}"
            + (" — wrap a single batch in a list: [batch]" if isinstance(data, torch.Tensor) else "")
        )
    if order == "layerwise" and isinstance(data, Iterator):
        raise TraineValValueError(
            "order='layerwise' iterates the data several times; pass a re-iterable "
            "(a list, a DataLoader), not an iterator or generator"
        )
    inner = _torch.unwrap(model)
    lazy = [
        n for n, t in itertools.chain(inner.named_parameters(), inner.named_buffers()) if nn.parameter.is_lazy(t)
    ]
    if lazy:
        raise TraineValValueError(
            f"the model has uninitialised lazy parameters/buffers ({', '.join(lazy[:3])}); "
            "run one forward pass first (e.g. model(example_batch)) so they take their shapes"
        )
    norms = [(name, m) for name, m in inner.named_modules() if is_norm_with_running_stats(m)]
    dist, _rank, world = _torch.distributed()
    if not norms:
        warnings.warn(
            "recalibrate_batchnorm: the model has no normalisation layer with running statistics; nothing to do",
            TraineValWarning,
            stacklevel=2,
        )
        return RecalibrationReport(order=order, dropout=dropout, world_size=world)

    snapshot = ModeSnapshot((model,))
    layers: list[_Layer] = []
    frozen: list[str] = []
    try:
        with torch.no_grad():
            # Which norm layers does training itself keep in eval (policies, train() overrides)?
            inner.train(True)
            for name, m in norms:
                if m.training:
                    layers.append(_Layer(name, m))
                else:
                    frozen.append(name)
            if dropout == "off":
                inner.train(False)  # the modes inference sees
            for layer in layers:
                layer.module.training = not layer.substitute
            run = _Run(inner, data, num_batches, forward, layers, progress, dist)
            if layers:
                with allow():  # the runtime guard's TE1xx checks: this pass is intended
                    if order == "single-pass":
                        run.single_pass()
                    else:
                        run.layerwise()
            report = run.report(frozen, order, dropout, world)
    except BaseException:
        for layer in layers:
            layer.restore()
        raise
    finally:
        snapshot.restore()
    return report


class _Run:
    """One recalibration: the hooks, the passes, the reduction across ranks, the final write."""

    def __init__(
        self,
        model: nn.Module,
        data: Iterable[Any],
        num_batches: int | None,
        forward: Callable[[nn.Module, Any], Any] | None,
        layers: list[_Layer],
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
        self.device = _torch.collective_device(dist, layers[0].module.running_mean) if layers else torch.device("cpu")
        self.batches = 0
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
        if key in self.gathering:
            total, var, n = layer.batch(args[0] if args else None)
            layer.add(total, var, n)
        elif layer.substitute and key not in self.final:
            # not gathered now and not final: normalise with the batch, as in training
            total, var, n = layer.batch(args[0] if args else None)
        else:
            return
        if layer.substitute:
            module.running_mean.copy_(total / n)
            module.running_var.copy_(var)
        if self.stop_enabled and key in self.expected:
            self.seen[key] = self.seen.get(key, 0) + 1
            if all(self.seen.get(k, 0) >= c for k, c in self.expected.items()):
                raise _Stop

    def _install(self) -> list[Any]:
        return [x.module.register_forward_pre_hook(self._pre_hook) for x in self.layers]

    # -- iteration ----------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        it = iter(self.data)
        return itertools.islice(it, self.num_batches) if self.num_batches is not None else it

    def _total(self) -> int | None:
        try:
            n = len(self.data)  # type: ignore[arg-type]
        except TypeError:
            return self.num_batches
        return min(n, self.num_batches) if self.num_batches is not None else n

    def _pass(self, bar: Progress, fraction: float = 1.0) -> int:
        count = 0
        for batch in self._batches():
            self.seen = {}
            try:
                self.forward(self.model, batch)
                self.cost += 1.0
            except _Stop:
                self.cost += fraction
            count += 1
            bar.advance()
        return count

    def _together(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; across ranks, make every rank fail if any rank's ``fn`` raised."""
        err: Exception | None = None
        result = None
        try:
            result = fn()
        except Exception as exc:  # BaseException (KeyboardInterrupt) goes straight up
            err = exc
        if self.dist is not None:
            flag = torch.tensor([0.0 if err is None else 1.0], dtype=torch.float64, device=self.device)
            self.dist.all_reduce(flag)
            failed = int(flag.item())
            if failed and err is None:
                raise _RemoteFailure(
                    f"recalibration failed on {failed} other rank{'s' if failed != 1 else ''}; "
                    "this rank's model was restored"
                )
        if err is not None:
            raise err
        return result

    # -- single pass --------------------------------------------------------------------
    def single_pass(self) -> None:
        self.gathering = set(self.by_id)
        handles = self._install()
        try:
            with Progress(self.progress, lines=False) as bar:
                bar.start("recalibrating BatchNorm", self._total())
                self.batches = self._together(lambda: self._pass(bar))
        finally:
            for h in handles:
                h.remove()
        self.rounds = 1
        self._finish(self.layers)

    # -- layerwise ----------------------------------------------------------------------
    def layerwise(self) -> None:
        def analyse() -> tuple[dict[int, int], dict[int, int], dict[int, float]]:
            first = next(iter(self._batches()), None)
            if first is None:
                return {}, {}, {}
            self.cost += 1.0
            return self._analyse(first)

        levels, calls, positions = self._together(analyse)
        levels = self._agree_levels(levels)
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

    def _round(self, bar: Progress, group: list[_Layer], calls: dict[int, int], positions: dict[int, float]) -> None:
        """Gather one dependency level; afterwards its layers normalise with their new statistics."""
        if not group:
            return
        self.gathering = {id(x.module) for x in group}
        known = all(k in calls for k in self.gathering)
        self.expected = {k: calls[k] for k in self.gathering} if known else {}
        self.stop_enabled = known
        fraction = max(positions.get(k, 1.0) for k in self.gathering) if known else 1.0
        self.batches = self._together(lambda: self._pass(bar, fraction))
        self.rounds += 1
        self._finish(group)
        for x in group:
            x.module.training = False

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

    def _agree_levels(self, levels: dict[int, int]) -> dict[int, int]:
        """Ranks must run the same rounds: check their levels agree (ranks without data follow)."""
        if self.dist is None:
            return levels
        big = float(1 << 30)
        has = bool(levels)
        vec = [float(levels.get(id(x.module), big - 1)) for x in self.layers]
        hi = torch.tensor([v if has else -1.0 for v in vec], dtype=torch.float64, device=self.device)
        lo = torch.tensor([v if has else big for v in vec], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(hi, op=self.dist.ReduceOp.MAX)
        self.dist.all_reduce(lo, op=self.dist.ReduceOp.MIN)
        if hi.max().item() < 0:
            return {}
        if not torch.equal(hi, lo):
            raise TraineValValueError(
                "order='layerwise': ranks found different layer dependencies (is the forward "
                "data-dependent?); use order='single-pass'"
            )
        return {id(x.module): int(v) for x, v in zip(self.layers, hi.tolist(), strict=True) if v < big - 1}

    # -- reduction and write --------------------------------------------------------------
    def _finish(self, group: list[_Layer]) -> None:
        """Combine the group's statistics (over ranks), write them, remember them as final."""
        like = group[0].module.running_mean
        dev = self.device
        sums, m2s = zip(*(x.local(like) for x in group), strict=True)
        sums = [s.to(dev) for s in sums]
        m2s = [m.to(dev) for m in m2s]
        head = torch.tensor(
            [float(self.batches)] + [float(x.n) for x in group] + [float(x.calls) for x in group],
            dtype=torch.float64,
            device=dev,
        )
        g = len(group)
        sizes = [x.num_features for x in group]
        if self.dist is not None:
            flat = torch.cat([head, *sums])
            self.dist.all_reduce(flat)
            head, gsums = flat[: 1 + 2 * g], list(torch.split(flat[1 + 2 * g :], sizes))
            # every rank's M2 about the global mean (Chan et al.), then summed
            parts = []
            for x, s, m2, gs, n in zip(group, sums, m2s, gsums, head[1 : 1 + g].tolist(), strict=True):
                if n == 0 or x.n == 0:
                    parts.append(torch.zeros_like(gs))
                else:
                    parts.append(m2 + x.n * (s / x.n - gs / n) ** 2)
            flat2 = torch.cat(parts)
            self.dist.all_reduce(flat2)
            gm2s = list(torch.split(flat2, sizes))
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
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)

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
