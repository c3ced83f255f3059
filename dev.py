#!/usr/bin/env python3
"""One-command set-up for traineval: ``python3 dev.py demo`` or ``python3 dev.py test``.

Creates (or reuses) ``.venv`` beside this file, installs the package in editable mode with
the extras the command needs and the pinned CPU build of PyTorch (``constraints/dev.txt``),
then runs the command. Only Python 3 (with venv) and git are needed on the machine.

    python3 dev.py demo [demo options]   # reproduce the article's claims (``traineval demo``)
    python3 dev.py test [pytest options] # ruff, the docs build (strict), then the full test suite
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
EXTRAS = {"demo": "demo", "test": "dev"}


def _run(*cmd: str | Path) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def _ensure_venv(extra: str) -> None:
    """Create the venv and install what ``extra`` needs, unless already up to date."""
    if not PY.exists() and _run(sys.executable, "-m", "venv", VENV) != 0:
        sys.exit("could not create .venv (is the python3-venv package installed?)")
    inputs = b"".join(
        (ROOT / name).read_bytes() for name in ("pyproject.toml", "constraints/dev.txt")
    )
    stamp = VENV / f".traineval-{extra}.stamp"
    digest = hashlib.sha256(inputs).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    steps = [
        (PY, "-m", "pip", "install", "-q", "--upgrade", "pip"),
        # the CPU build: PyPI's Linux wheel of torch is the CUDA one (several GB); where
        # PyTorch's index cannot be reached, pip warns and falls back to the other indexes
        (PY, "-m", "pip", "install", "-q", "-c", ROOT / "constraints/dev.txt",
         "--extra-index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"),
        (PY, "-m", "pip", "install", "-q", "-c", ROOT / "constraints/dev.txt",
         "-e", f"{ROOT}[{extra}]"),
    ]
    for step in steps:
        if _run(*step) != 0:
            sys.exit(f"set-up step failed: {' '.join(map(str, step))}")
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    _ensure_venv(EXTRAS[command])
    if command == "demo":
        return _run(BIN / "traineval", "demo", *rest)
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    with tempfile.TemporaryDirectory() as site:
        for step in (
            (PY, "-m", "ruff", "check", "."),
            (PY, "-m", "mypy"),  # the type checker over src/ ([tool.mypy] in pyproject.toml)
            (PY, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", site),
        ):
            code = _run(*step)
            if code != 0:
                return code
    # every core (pytest-xdist); `python3 dev.py test -n 0` runs in one process
    workers = [] if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in rest) else ["-n", "auto"]
    return _run(PY, "-m", "pytest", *workers, *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
