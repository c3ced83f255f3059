"""What a custom module's own ``self.training`` gates, found on a probe forward (private).

Hugging Face attention layers read ``self.training`` to pass ``dropout_p`` to
``scaled_dot_product_attention`` or ``training=`` to ``F.dropout``; a hand-written BatchNorm
reads it to choose batch statistics and update its buffers. Reading the source cannot tell
the two apart reliably, so :func:`probe_custom` runs one forward with only the candidates'
own flags set to training (everything else in eval), watches the functional calls each
candidate makes itself (:class:`~traineval.core.tracing.FunctionalWatch`) and which of its
own buffers change, then restores every flag, buffer and the RNG state exactly.

Verdicts: ``"dropout"`` (randomness only: active dropout / SDPA ``dropout_p`` calls, no
statistics, no buffer written), ``"statistics"`` (``batch_norm(training=True)`` with running
statistics, or an own buffer written), ``"none"`` (nothing observed: the flag gates
something else, e.g. gradient checkpointing, or a path the probe input did not reach).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from traineval._rng import RngState
from traineval.core import tracing
from traineval.core.modes import ModeSnapshot

Verdict = Literal["dropout", "statistics", "none"]
_RANDOM_KINDS = ("dropout", "attention", "activation")


def call(model: nn.Module, example: Any) -> Any:
    """``model(*example)`` for a tuple/list, ``model(**example)`` for a mapping, else ``model(example)``.

    >>> import torch, torch.nn as nn
    >>> call(nn.Identity(), torch.ones(2)).shape
    torch.Size([2])
    """
    if isinstance(example, Mapping):
        return model(**example)
    if isinstance(example, (tuple, list)):
        return model(*example)
    return model(example)


def probe_custom(model: nn.Module, example: Any, candidates: Sequence[nn.Module]) -> dict[int, Verdict]:
    """Verdict per candidate (keyed by ``id(module)``) from one no-grad probe forward.

    The model's flags, every buffer of the model and the global RNG state are restored
    exactly afterwards, also when the forward raises or is interrupted.

    >>> import torch, torch.nn as nn, torch.nn.functional as F
    >>> class Attn(nn.Module):
    ...     def forward(self, x):
    ...         return F.dropout(x, 0.1, training=self.training)
    >>> m = nn.Sequential(Attn())
    >>> probe_custom(m, torch.ones(2, 3), [m[0]]) == {id(m[0]): "dropout"}
    True
    """
    if not candidates:
        return {}
    ids = {id(m) for m in candidates}
    random: set[int] = set()
    stats: set[int] = set()

    def seen(found: tracing.FunctionalCall) -> None:
        caller = found.caller
        if caller is None or id(caller) not in ids:
            return
        if found.what == "F.batch_norm":
            if not found.mode_independent:
                stats.add(id(caller))
        elif any(k in found.what for k in ("dropout", "attention", "rrelu")) or found.what.endswith(
            "alpha_dropout"
        ):
            random.add(id(caller))

    snapshot = ModeSnapshot((model,))
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    own_before = {
        id(m): [(n, b.detach().clone()) for n, b in m.named_buffers(recurse=False) if b is not None]
        for m in candidates
    }
    rng = RngState()
    changed: set[int] = set()
    try:
        model.eval()
        for m in candidates:
            m.training = True  # noqa: TE006 - the probe flips each custom module alone, not its children
        with torch.no_grad(), tracing.track_modules(), tracing.FunctionalWatch(seen):
            call(model, example)
        for m in candidates:
            now = dict(m.named_buffers(recurse=False))
            for n, before in own_before[id(m)]:
                after = now.get(n)
                if after is None or after.shape != before.shape or not torch.equal(after, before):
                    changed.add(id(m))
    finally:
        for b, saved in buffers:
            with torch.no_grad():
                if b.shape == saved.shape:
                    b.copy_(saved)
        rng.restore()
        snapshot.restore()
    out: dict[int, Verdict] = {}
    for m in candidates:
        if id(m) in stats or id(m) in changed:
            out[id(m)] = "statistics"
        elif id(m) in random:
            out[id(m)] = "dropout"
        else:
            out[id(m)] = "none"
    return out
