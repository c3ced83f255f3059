"""The trained models and data every experiment reads, and measurements shared between claims."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.nn as nn

import traineval as te
from traineval._rng import RngState
from traineval.demo.experiments._measure import chunks
from traineval.demo.models import DemoCNN

T = TypeVar("T")


@dataclass
class Context:
    """The trained models and the data every experiment uses.

    :meth:`shared` computes a measurement that several claims read (C2 and C3 the BatchNorm
    normalisation, C2 and C7 the CNN's dropout) once per context.
    """

    cnn: DemoCNN
    autoencoder: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    ae_test: torch.Tensor
    seed: int
    sweep_images: int
    repeats: int
    train_batch_size: int = 64
    _shared: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def shared(self, key: str, compute: Callable[[Context], T]) -> T:
        """``compute(self)``, computed on the first call for ``key`` and remembered.

        ``compute`` runs with the global random state saved and restored, so its result and what
        the caller draws next do not depend on which claim asked first.

        >>> ctx = untrained_context()
        >>> ctx.shared("n", lambda c: len(c.x_test)), ctx.shared("n", lambda c: 0)
        (64, 64)
        """
        if key not in self._shared:
            with RngState():
                self._shared[key] = compute(self)
        result: T = self._shared[key]
        return result


def untrained_context(seed: int = 0, *, dropout: float = 0.5) -> Context:
    """A small :class:`Context` with untrained models, for examples and tests (a fraction of a second).

    The CNN gets three training-mode batches so that its running statistics have a history.

    >>> ctx = untrained_context()
    >>> len(ctx.x_train), len(ctx.x_test), ctx.cnn.training
    (96, 64, False)
    """
    from traineval.demo.data import blobs_dataset, shapes_dataset
    from traineval.demo.models import ColourAutoencoder

    with RngState():
        torch.manual_seed(seed)
        x, y = shapes_dataset(96, seed=seed * 10 + 1)
        xt, yt = shapes_dataset(64, seed=seed * 10 + 2)
        cnn = DemoCNN(p=dropout)
        with te.training(cnn), torch.no_grad():
            for xb in chunks(x, 32):
                cnn(xb)  # noqa: TE007 - a stand-in for training: training-mode batches give the running statistics a history
        ae = ColourAutoencoder()
    return Context(cnn=cnn.eval(), autoencoder=ae.eval(), x_train=x, y_train=y, x_test=xt, y_test=yt,
                   ae_test=blobs_dataset(8, seed=seed * 10 + 3), seed=seed, sweep_images=16, repeats=3)
