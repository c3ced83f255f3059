"""The traineval executable, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import traineval


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traineval", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"traineval {traineval.__version__}"


def test_no_command_prints_help_and_exits_2():
    r = run()
    assert r.returncode == 2 and "describe" in r.stdout


def test_describe_builtin_model_is_clean():
    r = run("describe", "traineval.examples:small_resnet")
    assert r.returncode == 0, r.stderr
    assert "BatchNorm2d" in r.stdout and "10 mode-sensitive" in r.stdout


@pytest.fixture
def user_models(tmp_path):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        def clean():
            return nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)).eval()

        def leaky():
            m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)).eval()
            m[1].train()
            return m

        def not_a_model():
            return [nn.Linear(2, 2)]

        def broken():
            raise RuntimeError("no weights here")

        NUMBER = 3
    """))
    (tmp_path / "badimport.py").write_text("raise ImportError('missing dependency foo')\n")
    return tmp_path


def test_describe_user_factory_exit_codes(user_models):
    assert run("describe", "mymodels:clean", cwd=user_models).returncode == 0
    r = run("describe", "mymodels:leaky", cwd=user_models)
    assert r.returncode == 1 and "TE201" in r.stdout
    r = run("describe", "mymodels:leaky", "--json", cwd=user_models)
    data = json.loads(r.stdout)
    assert r.returncode == 1 and data["findings"][0]["where"] == "1"
    r = run("describe", "mymodels:leaky", "--mode", "eval", cwd=user_models)
    assert r.returncode == 0


def test_check_and_describe_take_a_file_path(user_models, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cwd")  # run from another folder: only the path finds it
    path = str(user_models / "mymodels.py")
    r = run("describe", f"{path}:leaky", cwd=elsewhere)
    assert r.returncode == 1 and "TE201" in r.stdout, r.stderr
    assert run("describe", f"{path}:clean", cwd=elsewhere).returncode == 0
    r = run("check", f"{path}:clean", "--input-shape", "4,2", cwd=elsewhere)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("describe", f"{user_models / 'nope.py'}:clean", cwd=elsewhere)
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = run("describe", f"{path}:missing", cwd=elsewhere)
    assert r.returncode == 2 and "has no attribute 'missing'" in r.stderr


@pytest.mark.parametrize("spec, message", [
    ("mymodels:not_a_model", "returned list, expected an nn.Module"),
    ("mymodels:broken", "raised RuntimeError: no weights here"),
    ("mymodels:NUMBER", "is a int, not a callable factory"),
    ("mymodels:missing", "has no attribute 'missing'"),
    ("nosuchmodule:f", "cannot import module 'nosuchmodule'"),
    ("badimport:f", "missing dependency foo"),
    ("mymodels", "expected MODULE:FACTORY"),
])
def test_describe_bad_factory_is_one_line_error(user_models, spec, message):
    r = run("describe", spec, cwd=user_models)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_rules_lists_catalog_and_shows_one_code():
    r = run("rules")
    assert r.returncode == 0 and "TE201" in r.stdout and "mixed-modes" in r.stdout
    r = run("rules", "te201")
    assert r.returncode == 0 and "## Why is this bad?" in r.stdout
    r = run("rules", "--format", "json")
    assert {d["code"] for d in json.loads(r.stdout)} >= {"TE201", "TE202", "TE203", "TE204"}
    r = run("rules", "TE999")
    assert r.returncode == 2 and "unknown diagnostic code" in r.stderr


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("traineval") or str(__import__("pathlib").Path(sys.executable).parent / "traineval")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0


def test_lint_and_rules_start_without_importing_torch(tmp_path):
    """Public names load on first use; the CLI imports only the chosen command's module."""
    (tmp_path / "m.py").write_text("x = 1\n")
    code = (
        "import sys, traineval as te\n"
        "from traineval.cli import main\n"
        f"main(['lint', {str(tmp_path / 'm.py')!r}]); main(['rules'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "te.describe; import traineval.core.tree, traineval.runtime.guard\n"
        "assert callable(te.describe) and callable(te.guard), 'a submodule shadowed its function'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_public_names_all_resolve():
    import traineval as te

    for name in te.__all__:
        assert getattr(te, name) is not None, name
    assert sorted(te.__all__) == sorted(set(te.__all__))
