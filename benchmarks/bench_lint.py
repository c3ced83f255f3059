"""Speed of ``traineval lint`` beside TorchFix (CLI and flake8 plugin) and ``ruff check``, on
the same tree, in one run; prints wall times and ratios.

    python benchmarks/bench_lint.py PATH [--skip torchfix-flake8]

TorchFix and flake8 are benchmark-only dependencies (``pip install torchfix``); a tool that
is not installed is reported as such. Every tool runs once, cold, with caches off, as a
subprocess (so start-up, including importing torch for ``traineval``, is counted).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _tool(name: str) -> str | None:
    return shutil.which(name, path=str(BIN)) or shutil.which(name)


def commands(path: str) -> dict[str, list[str] | None]:
    """The command line of each tool, or None when it is not installed."""
    traineval, torchfix, flake8, ruff = (_tool(n) for n in ("traineval", "torchfix", "flake8", "ruff"))
    return {
        "traineval lint": [traineval, "lint", "--isolated", "--exit-zero", "--format", "json", path]
        if traineval else None,
        "torchfix": [torchfix, "--select", "ALL", path] if torchfix else None,
        "torchfix (flake8 plugin)": [flake8, "--isolated", "--select", "TOR", path] if flake8 and torchfix else None,
        "ruff check": [ruff, "check", "--isolated", "--no-cache", "--exit-zero", "--output-format", "json", path]
        if ruff else None,
    }


def count(path: str) -> tuple[int, int]:
    """Python files and lines under ``path``."""
    files = [p for p in Path(path).rglob("*.py") if ".venv" not in p.parts]
    lines = sum(len(p.read_bytes().splitlines()) for p in files)
    return len(files), lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--skip", action="append", default=[], help="tool names to skip")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    files, lines = count(args.path)
    print(f"tree: {args.path} ({files} Python files, {lines} lines)")
    times: dict[str, float] = {}
    for name, cmd in commands(args.path).items():
        if name in args.skip:
            print(f"{name:<26} skipped")
            continue
        if cmd is None:
            print(f"{name:<26} not installed")
            continue
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=args.timeout)
            status = f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {args.timeout:.0f} s"
        times[name] = time.perf_counter() - start
        print(f"{name:<26} {times[name]:8.2f} s  ({status})")
    ours = times.get("traineval lint")
    if ours:
        for name, t in times.items():
            if name != "traineval lint":
                print(f"ratio {name} / traineval lint: {t / ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
