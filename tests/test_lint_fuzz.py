"""Bounded fuzzing of ``--fix``: mutated real files, every Unicode line break, the result
checked against independent truth (``ast``'s own positions and ``compile``)."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traineval.lint import LintConfig
from traineval.lint.engine import analyze_file, assemble
from traineval.lint.fixes import fix_file

BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r", "\r\n", "\n"]
ALL = LintConfig(extend_select=("TE090",))
SEEDS = [
    "model.eval\n",
    "import torch.nn as nn\nimport torch.nn.functional as F\nclass N(nn.Module):\n"
    "    def forward(self, x):\n        return F.dropout(x, 0.5)\n",
    "import torch.nn as nn\nimport torch.nn.functional as F\nclass N(nn.Module):\n"
    "    def forward(self, q, k, v):\n"
    "        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1 if a else 0.2)\n",
    "x = 10  # noqa: TE001 - 1\n",
    "model.train()  # noqa: TE001, E501\n",
]


def _segment_offsets(text: str, node: ast.AST) -> tuple[int, int]:
    """Character offsets of ``node`` from ast's own line model (ast.get_source_segment's)."""
    lines = ast._splitlines_no_ff(text)  # type: ignore[attr-defined]
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))

    def off(line: int, col: int) -> int:
        return starts[line - 1] + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8", "ignore"))

    return off(node.lineno, node.col_offset), off(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
MUTATIONS = st.lists(st.tuples(st.integers(0, 400), st.sampled_from([*BREAKS, " ", "#", "("])), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=HEALTH)
@given(st.sampled_from(SEEDS), MUTATIONS)
def test_fixes_stay_exact_under_mutation(tmp_path: Path, seed: str, inserts: list[tuple[int, str]]) -> None:
    text = seed
    for pos, ch in inserts:
        pos = min(pos, len(text))
        text = text[:pos] + ch + text[pos:]
    path = tmp_path / "m.py"
    path.write_bytes(text.encode("utf-8"))
    result = assemble([analyze_file(str(path))], ALL)
    fixes = result.fixes.get(str(path), [])
    outcome = fix_file(str(path), fixes, roots=[str(tmp_path)], digest=result.digests.get(str(path)))
    if not outcome.applied:
        return
    new = outcome.new
    compile(new, "m.py", "exec")  # the fixed file still parses
    # every changed character lies inside a finding's node, as ast itself locates it
    tree = ast.parse(text)
    a = 0
    while a < min(len(text), len(new)) and text[a] == new[a]:
        a += 1
    b = 0
    while b < min(len(text), len(new)) - a and text[len(text) - 1 - b] == new[len(new) - 1 - b]:
        b += 1
    changed = (a, len(text) - b)
    lines = ast._splitlines_no_ff(text)  # type: ignore[attr-defined]
    regions = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Call, ast.Attribute, ast.expr)) and hasattr(node, "end_lineno"):
            regions.append(_segment_offsets(text, node))
    for i, ln in enumerate(lines, start=1):  # comments (TE090) live on their line
        start = sum(len(x) for x in lines[:i - 1])
        regions.append((start, start + len(ln)))
    assert any(lo <= changed[0] and changed[1] <= hi for lo, hi in regions), (text, new)
