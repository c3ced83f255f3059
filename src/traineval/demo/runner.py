"""Run the whole demo: data, training, every claim's experiment; returns the results (no files written)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

import traineval as te
from traineval._console import Progress
from traineval._rng import RngState
from traineval.demo.claims import CLAIMS
from traineval.demo.data import CLASS_NAMES, IMAGE_SIZE, blobs_dataset, shapes_dataset
from traineval.demo.experiments._context import Context
from traineval.demo.outcome import Claim
from traineval.demo.training import TrainingLog, train_autoencoder, train_classifier
from traineval.errors import TraineValTypeError, TraineValValueError


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run: ``DemoConfig()`` takes about a minute on 2 CPU cores, ``make(quick=True)`` seconds.

    Invalid sizes are refused at construction:

    >>> DemoConfig(epochs=0)
    Traceback (most recent call last):
    ...
    traineval.errors.TraineValValueError: epochs must be at least 1, got 0
    """

    seed: int = 0
    quick: bool = False
    train_images: int = 4096
    test_images: int = 1024
    epochs: int = 8
    max_lr: float = 6e-3
    sweep_images: int = 512
    ae_images: int = 2048
    ae_epochs: int = 6
    repeats: int = 20
    threads: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TraineValTypeError(f"expected an int for seed, got {type(self.seed).__name__}")
        if not 0 <= self.seed < 2**31:
            raise TraineValValueError(f"seed must be in [0, 2**31), got {self.seed}")
        minimum = {"train_images": 64, "test_images": 2, "epochs": 1, "sweep_images": 1, "ae_images": 32,
                   "ae_epochs": 1, "repeats": 2, "threads": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TraineValTypeError(f"expected an int for {name}, got {type(value).__name__}")
            if value < low:
                raise TraineValValueError(f"{name} must be at least {low}, got {value}")
        if not (isinstance(self.max_lr, float) and self.max_lr > 0):
            raise TraineValValueError(f"max_lr must be a positive float, got {self.max_lr!r}")

    @classmethod
    def make(cls, *, quick: bool = False, seed: int = 0, threads: int = 1) -> DemoConfig:
        """The default or the ``--quick`` configuration for ``seed``, run on ``threads`` CPU threads.

        One thread is the default: these tensors are small, so more threads gain little, while on
        a busy machine torch's worker threads can wait on each other many times over; and the
        numbers do not depend on how many cores the machine has.

        >>> DemoConfig.make(quick=True).epochs < DemoConfig.make().epochs
        True
        """
        if quick:
            return cls(seed=seed, quick=True, train_images=1536, test_images=512, epochs=4, max_lr=2e-2,
                       sweep_images=256, ae_images=768, ae_epochs=4, repeats=10, threads=threads)
        return cls(seed=seed, threads=threads)


@dataclass
class DemoResults:
    """Everything the demo measured: the claims, the training logs and the configuration."""

    config: DemoConfig
    claims: list[Claim]
    cnn_log: TrainingLog
    ae_log: TrainingLog

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, identical for identical runs (no timings, floats rounded to 6 significant digits)."""
        return _rounded({
            "traineval_version": te.__version__,
            "torch_version": torch.__version__,
            "config": asdict(self.config),
            "data": {"classes": list(CLASS_NAMES), "image_size": [3, IMAGE_SIZE, IMAGE_SIZE]},
            "training": {
                "cnn": {"steps": self.cnn_log.steps, "final_loss": self.cnn_log.final_loss,
                        "test_accuracy_per_epoch": list(self.cnn_log.per_epoch)},
                "autoencoder": {"steps": self.ae_log.steps, "final_loss": self.ae_log.final_loss,
                                "test_mse_per_epoch": list(self.ae_log.per_epoch)},
            },
            "claims": [c.to_json() for c in self.claims],
        })


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def run(config: DemoConfig, progress: Progress | None = None) -> DemoResults:
    """Generate the data, train both models and run every experiment; the global RNG state is restored.

    >>> from traineval.demo.runner import DemoConfig, run
    >>> results = run(DemoConfig(train_images=64, test_images=64, epochs=1, sweep_images=8,
    ...                          ae_images=32, ae_epochs=1, repeats=2))   # a tiny run: the claims, not the accuracy
    >>> [c.id for c in results.claims]
    ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8', 'T1', 'T2']
    """
    progress = progress or Progress(enabled=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, progress)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: DemoConfig, progress: Progress) -> DemoResults:
    with RngState():
        torch.manual_seed(cfg.seed)
        progress.note(f"generating {cfg.train_images + cfg.test_images} shape images and "
                      f"{cfg.ae_images + 64} colour images (seed {cfg.seed})")
        x_train, y_train = shapes_dataset(cfg.train_images, seed=cfg.seed * 10 + 1)
        x_test, y_test = shapes_dataset(cfg.test_images, seed=cfg.seed * 10 + 2)
        ae_train = blobs_dataset(cfg.ae_images, seed=cfg.seed * 10 + 3)
        ae_test = blobs_dataset(64, seed=cfg.seed * 10 + 4)
        cnn, cnn_log = train_classifier(x_train, y_train, x_test, y_test, epochs=cfg.epochs, seed=cfg.seed,
                                        max_lr=cfg.max_lr, progress=progress)
        ae, ae_log = train_autoencoder(ae_train, ae_test, epochs=cfg.ae_epochs, seed=cfg.seed, progress=progress)
        ctx = Context(cnn=cnn, autoencoder=ae, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                      ae_test=ae_test, seed=cfg.seed, sweep_images=min(cfg.sweep_images, cfg.test_images),
                      repeats=cfg.repeats)
        progress.start("measuring the claims", len(CLAIMS))
        claims = []
        for spec in CLAIMS:
            torch.manual_seed(cfg.seed)  # each experiment starts from the same state, whatever ran before
            claim = spec.run(ctx)
            claims.append(claim)
            progress.advance(detail=spec.id)
            progress.note(f"{spec.id} {claim.verdict}: {claim.title}")
    return DemoResults(cfg, claims, cnn_log, ae_log)
