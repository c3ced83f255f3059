"""Fuzz campaign for ``traineval lint --fix`` (issue 13), and its time on 1, 2 and 4 MB files.

    python benchmarks/lint_fuzz.py [--files N] [--source DIR] [--seed S] [--timing]

Each trial copies a real file (from ``--source``, default the installed ``traineval`` and
``torch/nn`` sources, plus seeds that carry fixable findings) into a fresh tree, mutates it
(inserted/deleted characters, every Unicode line break, fixable snippets), adds symlinks in
and out of the tree, special files (FIFO, /dev/zero link), malformed notebooks and
pyproject files, and runs ``traineval lint --fix`` as a subprocess with a time limit.
Counted: files tried, fixes applied, fixed files that no longer parse, edits outside the
span of a fix (any byte changed outside the fixed lines), files outside the tree changed,
crashes (exit code other than 0/1 or a traceback) and hangs (time limit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r", "\r\n", "\n"]
SNIPPETS = ["\nmodel.eval\n", "\nx = 10  # noqa: TE001 - 1\n", "\nm.train  # noqa: TE001, TE002\n",
            "\nimport torch.nn.functional as F\nclass N(torch.nn.Module):\n    def forward(self, x):\n"
            "        return F.dropout(x, 0.5) + F.scaled_dot_product_attention(x, x, x, dropout_p=0.1 if a else 0.2)\n"]
ENV = {**os.environ, "NO_COLOR": "1"}


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 6)):
        pos = rng.randint(0, len(text))
        op = rng.random()
        if op < 0.4:
            text = text[:pos] + rng.choice(BREAKS) + text[pos:]
        elif op < 0.7:
            text = text[:pos] + rng.choice(SNIPPETS) + text[pos:]
        elif op < 0.85:
            text = text[:pos] + text[pos + rng.randint(1, 5):]
        else:
            text = text[:pos] + rng.choice(" ()#:'\"\\\t") + text[pos:]
    return text


def _changed_lines(old: str, new: str) -> set[int]:
    """The 1-based lines of ``old`` that differ in ``new`` (Python's line model, difflib)."""
    import difflib

    from traineval.lint.lines import python_lines

    a, b = python_lines(old, keepends=True), python_lines(new, keepends=True)
    changed: set[int] = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            changed.update(range(i1 + 1, max(i2, i1 + 1) + 1))
    return changed


def trial(src: str, rng: random.Random, stats: dict[str, int], limit: float) -> None:
    from traineval.lint.config import LintConfig
    from traineval.lint.engine import analyze_file, assemble

    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as other:
        tree = Path(d)
        outside = Path(other) / "outside.py"
        outside.write_text("model.eval\n")
        text = _mutate(src, rng) if rng.random() < 0.8 else src
        target = tree / "m.py"
        target.write_bytes(text.encode("utf-8", "surrogatepass"))
        before = analyze_file(str(target), max_bytes=0)
        expected = assemble([before], LintConfig(extend_select=("TE090",))).fixes.get(str(target), [])
        fix_lines = {fx.edit.span.line for fx in expected} | {fx.edit.span.end_line for fx in expected}
        extra = rng.random()
        if extra < 0.2:
            (tree / "link.py").symlink_to(target)
        elif extra < 0.35:
            (tree / "out.py").symlink_to(outside)
        elif extra < 0.45:
            os.mkfifo(tree / "fifo.py")
            (tree / "zero.py").symlink_to("/dev/zero")
        elif extra < 0.6:
            notebooks = ['{"cells": [{"cell_type": "code", "source": [1]}]}', "[" * 5000, '{"cells": 3}', "\xff"]
            (tree / "nb.ipynb").write_text(rng.choice(notebooks))
        elif extra < 0.7:
            bad = [b"[tool.traineval]\njobs = 'x'\n", b"[tool]\ntraineval=1\n", b"\xff\xfe",
                   b"[tool.traineval]\nformat=1\n"]
            (tree / "pyproject.toml").write_bytes(rng.choice(bad))
        stats["files"] += 1
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-m", "traineval", "lint", "--extend-select", "TE090", "--fix", "."],
                               cwd=tree, capture_output=True, text=True, timeout=limit, env=ENV)
        except subprocess.TimeoutExpired:
            stats["hangs"] += 1
            return
        stats["seconds"] += int(time.perf_counter() - t0)
        config_error = r.returncode == 2 and "pyproject" in r.stderr
        if (r.returncode not in (0, 1) and not config_error) or "Traceback" in r.stderr:
            stats["crashes"] += 1
            print("CRASH", r.returncode, r.stderr[-500:], file=sys.stderr)
            return
        if outside.read_text() != "model.eval\n":
            stats["written_outside"] += 1
        new = target.read_bytes().decode("utf-8", "surrogatepass")
        if new == text:
            return
        stats["fixed_files"] += 1
        fixed = len(expected) - len(assemble([analyze_file(str(target), max_bytes=0)],
                                             LintConfig(extend_select=("TE090",))).fixes.get(str(target), []))
        stats["fixes_applied"] += max(fixed, 1)
        try:
            compile(new, "m.py", "exec")
        except (SyntaxError, ValueError):
            try:
                compile(text, "m.py", "exec")
            except (SyntaxError, ValueError):  # ast.parse accepted the input, compile never did
                stats["input_did_not_compile"] += 1
            else:
                stats["unparsable"] += 1
            print("UNPARSABLE", repr(text[:200]), file=sys.stderr)
        if not _changed_lines(text, new) <= fix_lines:
            stats["outside_span"] += 1
            print("OUTSIDE", repr(text[:200]), file=sys.stderr)


def timing() -> None:
    """Wall time of ``traineval lint`` on one long line and on many lines, 1, 2 and 4 MB."""
    for shape in ("one line", "many lines"):
        for mb in (1, 2, 4):
            n = mb * 1024 * 1024
            if shape == "one line":
                body = "x = [" + "1, " * (n // 3) + "]; model.eval\n"
            else:
                unit = "y = f(a, b)\n" * 999 + "model.eval\n"
                body = unit * max(1, n // len(unit))
            with tempfile.TemporaryDirectory() as d:
                Path(d, "big.py").write_text(body)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "traineval", "lint", "--max-file-size", "0", "big.py"],
                               cwd=d, capture_output=True, env=ENV, timeout=600)
                print(f"{shape:>10} {mb} MB: {time.perf_counter() - t0:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--source", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds before a run counts as a hang")
    parser.add_argument("--timing", action="store_true", help="only time 1, 2 and 4 MB files")
    args = parser.parse_args()
    if args.timing:
        timing()
        return
    import traineval

    root = Path(args.source) if args.source else Path(traineval.__file__).parent
    pool = [p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py")) if p.stat().st_size < 40_000]
    rng = random.Random(args.seed)
    stats = dict.fromkeys(["files", "fixed_files", "fixes_applied", "unparsable", "outside_span", "written_outside",
                           "input_did_not_compile", "crashes", "hangs", "seconds"], 0)
    for _ in range(args.files):
        trial(rng.choice(pool) if rng.random() < 0.7 else rng.choice(SNIPPETS) * 3, rng, stats, args.limit)
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
