"""Saving and restoring every global random generator: torch's CPU and CUDA generators,
Python's ``random`` and NumPy's legacy global state (when NumPy is imported).

>>> import torch
>>> state = RngState()
>>> a = torch.rand(1)
>>> state.restore()
>>> bool(torch.rand(1) == a)                 # the same draw again
True
"""

from __future__ import annotations

import random
import sys
from typing import Any

import torch


def _cuda_ready() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


class RngState:
    """The global random generators, saved on creation and put back by :meth:`restore`.

    CUDA generators are saved only when CUDA is already initialised: saving them would
    initialise it. Also a context manager that restores on exit.
    """

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if _cuda_ready() else None
        self.python = random.getstate()
        numpy = sys.modules.get("numpy")
        self.numpy = numpy.random.get_state() if numpy is not None else None

    @staticmethod
    def seed(seed: int) -> None:
        """Seed every global generator (torch CPU and CUDA, Python, NumPy if imported)."""
        torch.default_generator.manual_seed(seed)
        if _cuda_ready():
            torch.cuda.manual_seed_all(seed)
        random.seed(seed)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed(seed % 2**32)

    def restore(self) -> None:
        """Put back the saved states."""
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        random.setstate(self.python)
        numpy = sys.modules.get("numpy")
        if numpy is not None and self.numpy is not None:
            numpy.random.set_state(self.numpy)

    def __enter__(self) -> RngState:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()
