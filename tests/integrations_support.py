"""Fixtures shared by the Lightning and Hugging Face integration tests (imported by both)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from traineval.runtime import _interceptor as _guard_runtime


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on shared cores
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_guard_left():
    yield
    assert not _guard_runtime.installed(), "a guard hook outlived the framework's run"


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    """Equal within ``tol`` (absolute and relative), compared in float64."""
    return torch.allclose(a.double(), b.double(), atol=tol, rtol=tol)


def import_error_without(blocked: list[str], module: str) -> str:
    """In a fresh interpreter: check that ``import traineval`` imports no framework, block the
    ``blocked`` packages (as if not installed), import ``module``; return the ImportError text."""
    code = (
        "import sys\n"
        "import traineval, traineval.integrations\n"
        "loaded = [m for m in ('lightning', 'pytorch_lightning', 'transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
