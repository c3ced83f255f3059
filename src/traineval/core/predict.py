"""Monte-Carlo dropout prediction: :func:`predict_mc` and its result, :class:`MCPrediction`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from traineval.core.mcprobe import call
from traineval.core.policies import mc_dropout
from traineval.errors import TraineValTypeError, TraineValValueError, require_module

Task = Literal["regression", "classification"]
_SEQUENCE_LAYERS = (
    nn.RNNBase,
    nn.MultiheadAttention,
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)


@dataclass(frozen=True)
class MCPrediction:
    """Predictive moments over Monte-Carlo dropout samples; unpacks as ``mean, variance``.

    ``samples`` holds every sample (sample axis first) when asked for. For
    ``task="classification"``, ``mean``/``variance`` are those of the class probabilities,
    ``entropy`` is the predictive entropy of the mean probabilities (nats) and
    ``mutual_information`` the BALD score: entropy minus the mean entropy of the samples.
    """

    mean: torch.Tensor
    variance: torch.Tensor
    samples: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.mean, self.variance))


def default_batch_dim(model: nn.Module) -> int:
    """1 for torch's sequence-first layers (``batch_first=False``), else 0.

    >>> import torch.nn as nn
    >>> default_batch_dim(nn.LSTM(3, 3)), default_batch_dim(nn.LSTM(3, 3, batch_first=True))
    (1, 0)
    """
    if isinstance(model, _SEQUENCE_LAYERS):
        for m in model.modules():
            flag = getattr(m, "batch_first", None)
            if isinstance(flag, bool):
                return 0 if flag else 1
    return 0


def _tensors(example: Any) -> list[torch.Tensor]:
    if isinstance(example, torch.Tensor):
        return [example]
    values = example.values() if isinstance(example, Mapping) else example
    return [v for v in values if isinstance(v, torch.Tensor)]


def _map(example: Any, fn: Any) -> Any:
    if isinstance(example, torch.Tensor):
        return fn(example)
    if isinstance(example, Mapping):
        return {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in example.items()}
    return type(example)(fn(v) if isinstance(v, torch.Tensor) else v for v in example)


def _prediction(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) or hasattr(out, "keys"):
        if "logits" in out and isinstance(out["logits"], torch.Tensor):
            return out["logits"]
        values = list(out.values())
    elif isinstance(out, (tuple, list)):
        values = list(out)
    else:
        values = []
    for v in values:
        if isinstance(v, torch.Tensor):
            return v
    raise TraineValTypeError(f"predict_mc needs a model output holding a tensor, got {type(out).__name__}")


def predict_mc(
    model: nn.Module,
    x: Any,
    samples: int = 20,
    *,
    max_batch: int | None = None,
    batch_dim: int | None = None,
    task: Task = "regression",
    class_dim: int = -1,
    return_samples: bool = False,
) -> MCPrediction:
    """Predictive mean and variance of ``model(x)`` over ``samples`` dropout masks.

    Runs under :func:`mc_dropout` (with ``x`` as its probe example, so Hugging Face
    attention dropout stays live) and ``torch.no_grad()``. Every tensor of ``x`` whose size
    along ``batch_dim`` is the batch size is repeated ``samples`` times along it and sent
    through the model in one forward — not a Python loop — unless ``max_batch`` caps the rows
    per forward (a batch larger than ``max_batch`` is split too). The prediction is the
    output tensor, else ``logits`` of a dict-like output, else its first tensor (the output of
    ``nn.LSTM``, the attention output of ``nn.MultiheadAttention``). Variances are population
    variances (``correction=0``). The model's modes are restored afterwards.

    Args:
        model: the model.
        x: a tensor, a tuple (``model(*x)``) or a dict (``model(**x)``).
        samples: number of dropout masks.
        max_batch: most rows per forward.
        batch_dim: the batch dimension of inputs and prediction; by default 1 for torch's
            sequence-first layers (``batch_first=False``), else 0.
        task: ``"classification"`` turns the prediction into probabilities (softmax over
            ``class_dim``) and adds ``entropy`` and ``mutual_information`` (BALD).
        class_dim: the class dimension of the prediction.
        return_samples: keep every sample in ``.samples`` (sample axis first).

    Returns:
        An :class:`MCPrediction` (unpacks as ``mean, variance``).

    >>> import torch, torch.nn as nn, traineval as te
    >>> model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.3))
    >>> mean, var = te.predict_mc(model, torch.ones(5, 3), samples=50)
    >>> mean.shape, var.shape
    (torch.Size([5, 2]), torch.Size([5, 2]))
    >>> te.predict_mc(model, torch.ones(5, 3), task="classification").mutual_information.shape
    torch.Size([5])

    Reference: Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016;
    Houlsby et al., "Bayesian Active Learning for Classification and Preference Learning", 2011.
    """
    require_module(model)
    if not isinstance(x, (torch.Tensor, tuple, list, Mapping)) or not _tensors(x):
        raise TraineValTypeError(
            f"expected a tensor batch for x (or a tuple/dict holding tensors), got {type(x).__name__}"
        )
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise TraineValValueError(f"samples must be a positive int, got {samples!r}")
    if max_batch is not None and (not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1):
        raise TraineValValueError(f"max_batch must be a positive int or None, got {max_batch!r}")
    if task not in ("regression", "classification"):
        raise TraineValValueError(f"task must be 'regression' or 'classification', got {task!r}")
    dim = default_batch_dim(model) if batch_dim is None else batch_dim
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TraineValTypeError(f"batch_dim must be an int, got {type(dim).__name__}")
    first = _tensors(x)[0]
    if first.dim() <= dim:
        raise TraineValValueError(f"x must have a batch dimension (dim {dim}); its shape is {tuple(first.shape)}")
    batch = first.shape[dim]

    def batched(t: torch.Tensor) -> bool:
        return t.dim() > dim and t.shape[dim] == batch

    def repeat(n: int, lo: int, hi: int) -> Any:
        return _map(x, lambda t: torch.cat([t.narrow(dim, lo, hi - lo)] * n, dim) if batched(t) else t)

    if max_batch is None or max_batch >= batch:
        per = samples if max_batch is None else max(1, max_batch // max(batch, 1))
        plan = [(min(per, samples - s), 0, batch) for s in range(0, samples, per)]
    else:
        slices = [(lo, min(lo + max_batch, batch)) for lo in range(0, batch, max_batch)]
        plan = [(1, lo, hi) for _ in range(samples) for lo, hi in slices]
    draws: list[torch.Tensor] = []
    with mc_dropout(model, example=x), torch.no_grad():
        pieces: list[torch.Tensor] = []
        for n, lo, hi in plan:
            out = _prediction(call(model, repeat(n, lo, hi)))
            out = out.unflatten(dim, (n, hi - lo)).movedim(dim, 0)  # (n, ..., rows, ...)
            pieces.append(out)
            if hi == batch:  # a full batch of n samples is complete
                draws.append(torch.cat(pieces, dim + 1) if len(pieces) > 1 else pieces[0])
                pieces = []
    stacked = torch.cat(draws, 0)
    entropy = mutual = None
    if task == "classification":
        cd = class_dim if class_dim < 0 else class_dim + 1
        probs = stacked.float().softmax(cd) if not stacked.is_floating_point() else stacked.softmax(cd)
        mean = probs.mean(0)
        entropy = -(mean * mean.clamp_min(1e-30).log()).sum(cd - 1 if cd > 0 else cd)
        expected = -(probs * probs.clamp_min(1e-30).log()).sum(cd).mean(0)
        mutual = entropy - expected
        stacked = probs
    return MCPrediction(
        stacked.mean(0),
        stacked.var(0, correction=0),
        stacked if return_samples else None,
        entropy,
        mutual,
    )
