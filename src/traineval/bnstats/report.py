"""The outcome of :func:`~traineval.recalibrate_batchnorm`: per-layer and whole-call reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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
