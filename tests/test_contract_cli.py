"""``traineval check`` run as a real subprocess on a model module written to a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODELS = '''
import torch, torch.nn as nn

def clean():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.bns = [nn.BatchNorm1d(8)]          # plain list: model.eval() never reaches it

    def forward(self, x):
        return self.bns[0](x)

def buggy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), Head())

def example():
    return torch.randn(8, 4, generator=torch.Generator().manual_seed(0))

def one_sample():
    return torch.randn(1, 4)

def broken():
    raise RuntimeError("no weights here")
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    (path / "mymodels.py").write_text(textwrap.dedent(MODELS))
    return path


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "traineval", "check", *args], cwd=folder, capture_output=True,
                          text=True, timeout=120)


def test_clean_model_exits_zero(folder: Path) -> None:
    proc = _run(folder, "mymodels:clean", "--input-shape", "8,4")
    assert proc.returncode == 0, proc.stderr
    assert "0 error(s), 0 warning(s)" in proc.stdout
    assert "BatchNorm statistics gap not measured" in proc.stdout  # random input


def test_buggy_model_exits_one_and_names_the_module_in_json(folder: Path) -> None:
    proc = _run(folder, "mymodels:buggy", "--example", "mymodels:example", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    assert {(d["code"], d["where"]) for d in data["diagnostics"] if d["severity"] == "error"} == {
        ("TE211", "1.bns[0]"), ("TE212", "1.bns[0]"), ("TE213", "1.bns[0]")}
    assert data["forwards"] <= 2 * len(data["samples"]) + 6
    proc = _run(folder, "mymodels:buggy", "--example", "mymodels:example", "--exit-zero")
    assert proc.returncode == 0 and "TE213 [error]" in proc.stdout


def test_token_model_with_integer_inputs(folder: Path) -> None:
    proc = _run(folder, "traineval.examples:transformer_classifier", "--input-shape", "4,12", "--integers", "100",
                "--samples", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples [0, 3] checked alone, 7 forwards" in proc.stdout


def test_batch_of_one_exits_two(folder: Path) -> None:
    proc = _run(folder, "mymodels:buggy", "--example", "mymodels:one_sample")
    assert proc.returncode == 2
    assert "batch independence needs at least 2" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mymodels:broken", "--input-shape", "8,4"), "calling mymodels:broken() raised RuntimeError"),
        (("mymodels:clean",), "one of the arguments --example --input-shape is required"),
        (("mymodels:clean", "--input-shape", "8,x4,a"), "--input-shape expects"),
        (("mymodels:clean", "--input-shape", "8,4", "--integers", "0"), "--integers expects a positive"),
        (("mymodels:clean", "--example", "mymodels:nothing"), "has no attribute 'nothing'"),
    ],
    ids=["factory-raises", "no-example", "bad-shape", "bad-integers", "missing-example"],
)
def test_usage_errors_exit_two(folder: Path, args: tuple[str, ...], message: str,
                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The same parser in-process (cheap): one-line errors, exit code 2."""
    from traineval.cli import main

    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    try:
        code = main(["check", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
