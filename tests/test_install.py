"""Installs that exist: the linter without torch, and messages with commands that work.

The core distribution does not require torch (``pyproject.toml``): ``traineval lint`` and the
pre-commit hook install in a few seconds, while everything else asks for torch with a message
that says how to get the CPU or the CUDA build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BUGGY = "import torch\n\ndef validate(model, x):\n    model.eval\n    return model(x)\n"

# Runs a snippet in a fresh interpreter where `import torch` fails as it does when torch is
# not installed (ModuleNotFoundError with name="torch").
NO_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "torch":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
    """
)


def run_without_torch(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_core_distribution_does_not_require_torch_and_the_extras_do():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("torch")]
    extras = project["optional-dependencies"]
    for extra in ("torch", "rich", "plot", "demo", "lightning", "transformers", "test"):
        assert any(d.startswith("torch>=") for d in extras[extra]), extra


def test_lint_runs_without_torch_and_the_rest_says_how_to_install_it(tmp_path: Path):
    (tmp_path / "train.py").write_text(BUGGY)
    r = run_without_torch(
        """
        import sys
        from traineval.cli import main
        code = main(["lint", "train.py"])
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if "torch" in m)
        print("lint exit", code)
        print("describe exit", main(["describe", "traineval.examples:mlp"]))
        import traineval as te
        try:
            te.guard
        except ModuleNotFoundError as exc:
            print("guard:", exc.name, exc)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "train.py:4:5: TE001" in r.stdout and "lint exit 1" in r.stdout
    assert "describe exit 2" in r.stdout
    assert r.stderr.count("\n") == 1 and "traineval describe: error:" in r.stderr  # one line
    for message in (r.stderr, r.stdout.partition("guard:")[2]):
        assert "--index-url https://download.pytorch.org/whl/cpu" in message
        assert "pip install torch" in message
    assert "guard: torch traineval.guard:" in r.stdout


@pytest.mark.slow
def test_lint_installs_and_runs_in_a_venv_without_torch(tmp_path: Path):
    """The real thing: a new venv, ``pip install`` of this checkout, ``traineval lint``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    pip = subprocess.run(
        [bin_ / "python", "-m", "pip", "install", "-q", str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    listed = subprocess.run([bin_ / "python", "-m", "pip", "list"], capture_output=True, text=True)
    assert "traineval" in listed.stdout and "torch" not in listed.stdout
    (tmp_path / "train.py").write_text(BUGGY)
    r = subprocess.run([bin_ / "traineval", "lint", "train.py"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "train.py:4:5: TE001" in r.stdout, r.stdout + r.stderr
