"""Training the demo's models on the embedded data, deterministically for a seed (private to the demo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import traineval as te
from traineval._console import Progress
from traineval.demo.models import ColourAutoencoder, DemoCNN


@dataclass(frozen=True)
class TrainingLog:
    """What a training run did: steps, the last epoch's mean loss, the test metric per epoch."""

    steps: int
    final_loss: float
    per_epoch: tuple[float, ...]


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]  # drop the last partial


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Eval-mode accuracy of ``model`` on ``(x, y)``; the model's modes are restored afterwards.

    >>> import torch.nn as nn
    >>> model = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2)), model.bias.zero_()
    >>> accuracy(model, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
    0.6666666666666666
    """
    correct = 0
    with te.inference(model):
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def _fit(
    model: torch.nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    evaluate: Callable[[], tuple[float, str]],
    *,
    optimizer: torch.optim.Optimizer,
    max_lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    label: str,
    progress: Progress,
) -> TrainingLog:
    """Shuffle, step a one-cycle schedule, log ``evaluate()`` after every epoch; leaves the model in eval mode.

    ``loss_fn(output, indices)`` gives the loss of one batch (the indices select its targets).
    """
    gen = torch.Generator().manual_seed(seed + 1)
    steps_per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch)
    progress.start(label, epochs * steps_per_epoch)
    per_epoch: list[float] = []
    mean_loss = 0.0
    model.train()
    for epoch in range(epochs):
        loss_sum = 0.0
        for idx in _batches(len(x), batch_size, gen):
            loss = loss_fn(model(x[idx]), idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            loss_sum += float(loss.detach())
            progress.advance(detail=f"loss {float(loss.detach()):.4f}")
        mean_loss = loss_sum / steps_per_epoch
        metric, text = evaluate()
        per_epoch.append(metric)
        progress.note(f"epoch {epoch + 1}/{epochs}: mean loss {mean_loss:.4f}, {text}")
    model.eval()
    return TrainingLog(epochs * steps_per_epoch, mean_loss, tuple(per_epoch))


def train_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    progress: Progress,
    max_lr: float = 6e-3,
    batch_size: int = 64,
) -> tuple[DemoCNN, TrainingLog]:
    """Train :class:`DemoCNN` with AdamW and a one-cycle schedule; the test accuracy is logged per epoch.

    >>> from traineval.demo.data import shapes_dataset
    >>> x, y = shapes_dataset(64, seed=0)
    >>> model, log = train_classifier(x, y, x, y, epochs=1, seed=0, progress=Progress(enabled=False))
    >>> log.steps, len(log.per_epoch), model.training
    (1, 1, False)
    """
    torch.manual_seed(seed)
    model = DemoCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=max_lr / 2, weight_decay=1e-4)

    def evaluate() -> tuple[float, str]:
        acc = accuracy(model, x_test, y_test)
        return acc, f"test accuracy {acc:.1%}"

    log = _fit(model, x, lambda out, idx: F.cross_entropy(out, y[idx]), evaluate, optimizer=opt, max_lr=max_lr,
               epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
               label="training the CNN")
    return model, log


def train_autoencoder(
    x: torch.Tensor, x_test: torch.Tensor, *, epochs: int, seed: int, progress: Progress, batch_size: int = 32
) -> tuple[ColourAutoencoder, TrainingLog]:
    """Train :class:`ColourAutoencoder` to reconstruct colourful images (MSE, Adam); test MSE logged per epoch.

    >>> from traineval.demo.data import blobs_dataset
    >>> x = blobs_dataset(64, seed=0)
    >>> model, log = train_autoencoder(x, x[:8], epochs=2, seed=0, progress=Progress(enabled=False))
    >>> log.steps, log.per_epoch[1] < log.per_epoch[0]
    (4, True)
    """
    torch.manual_seed(seed)
    model = ColourAutoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate() -> tuple[float, str]:
        with te.inference(model):
            mse = float(F.mse_loss(model(x_test), x_test))
        return mse, f"test MSE {mse:.4f}"

    log = _fit(model, x, lambda out, idx: F.mse_loss(out, x[idx]), evaluate, optimizer=opt, max_lr=5e-3,
               epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
               label="training the autoencoder")
    return model, log
