"""The README runs as written, in a plain shell, as a new user would after the set-up.

Every command runs under ``env -i`` with a minimal PATH (no activated venv, no PYTHONPATH),
from a folder laid out like the clone after ``python3 dev.py test``: ``.venv`` (here the
environment that runs the tests), ``src/`` and ``benchmarks/``. Python blocks are saved as
``quickstart.py`` and run with ``.venv/bin/python``, as the README says. The set-up and
install blocks (they create environments) and ``traineval demo`` (tests/test_demo.py runs it)
are left out, by name below.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, flags=re.S)
SET_UP = ("dev.py", "pip install")  # blocks that create environments: the set-up itself
SKIPPED_COMMANDS = (" demo",)  # too slow for here; tests/test_demo.py runs it
SHELL_LINES = [
    line.split("  #")[0].strip()
    for kind, code in BLOCKS if kind == "bash" and not any(s in code for s in SET_UP)
    for line in code.splitlines()
    if line.strip() and not any(s in line for s in SKIPPED_COMMANDS)
]
PYTHON_BLOCKS = [code for kind, code in BLOCKS if kind == "python"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clone")
    (folder / ".venv").symlink_to(Path(sys.prefix))
    for name in ("src", "benchmarks"):
        (folder / name).symlink_to(ROOT / name)
    return folder


def plain_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={cwd}", "MPLBACKEND=Agg", "NO_COLOR=1"]
    return subprocess.run([*env, "sh", "-c", command], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_readme_has_the_blocks_it_promises():
    assert any("dev.py demo" in code for _, code in BLOCKS)
    assert len(SHELL_LINES) >= 4 and len(PYTHON_BLOCKS) >= 2
    assert all(line.startswith(".venv/bin/") for line in SHELL_LINES), SHELL_LINES


@pytest.mark.parametrize("command", SHELL_LINES)
def test_readme_command_runs_in_a_plain_shell(command: str, clone: Path):
    r = plain_shell(command, clone)
    assert r.returncode == 0, f"$ {command}\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip()


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs_in_a_plain_shell(index: int, clone: Path):
    (clone / "quickstart.py").write_text(PYTHON_BLOCKS[index], encoding="utf-8")
    r = plain_shell(".venv/bin/python quickstart.py", clone)
    assert r.returncode == 0, f"block {index}:\n{r.stdout}\n{r.stderr}"


def test_a_plain_shell_has_no_traineval_on_path(clone: Path):
    """The reason the README says .venv/bin/: without it the commands are not found."""
    r = plain_shell("command -v traineval || echo none", clone)
    assert r.stdout.strip() == "none"


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0].strip().splitlines()
    commands = [c.split("#", 1)[0].strip() for c in commands]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\npython3 dev.py test\n" in ci
