"""The linter's engine without the CLI: noqa, selection, fixes, decoding, robustness."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traineval.lint import LintConfig, lint_source
from traineval.lint.engine import analyze_file, assemble
from traineval.lint.fixes import apply_edits

ALL = LintConfig(extend_select=("TE08", "TE090"))


def codes(src: str, config: LintConfig = ALL) -> list[str]:
    return [f.code for f in lint_source(src, config=config)]


def test_noqa_forms() -> None:
    assert codes("model.eval  # noqa\n") == []
    assert codes("model.eval  # noqa: TE001\n") == []
    assert codes("model.eval  # NOQA:TE001,TE002\n") == ["TE090"]  # TE002 is unused
    assert codes("model.eval  # noqa: TE002\n") == ["TE001", "TE090"]  # wrong code: still reported; TE002 unused
    assert codes("# traineval: noqa\nmodel.eval\n") == []
    assert codes("# traineval: noqa: TE001\nmodel.eval\nmodel.train\n") == []
    assert codes("s = '# noqa'; model.eval\n") == ["TE001"]  # a string is not a comment


def test_unused_noqa_fix_removes_the_comment() -> None:
    src = "model.eval()  # noqa: TE001\nmodel.train()  # noqa: TE001, E501\n"
    result = assemble([analyze_file("m.py", src.encode())], ALL)
    assert [f.code for f in result.findings] == ["TE090", "TE090"]
    fixed, n = apply_edits(src, result.edits["m.py"])
    assert n == 2 and fixed == "model.eval()\nmodel.train()  # noqa: E501\n"


def test_selection_prefixes_and_default_off_rules() -> None:
    src = "import torch\ndef predict(model, x):\n    with torch.no_grad():\n        return model(x)\nm.eval\n"
    assert codes(src, LintConfig()) == ["TE001"]  # TE081 is off by default
    assert codes(src, LintConfig(select=("TE",))) == ["TE001"]  # a broad prefix does not turn it on
    assert codes(src, LintConfig(extend_select=("TE081",))) == ["TE081", "TE001"]
    assert codes(src, LintConfig(select=("TE08",))) == ["TE081"]
    assert codes(src, LintConfig(ignore=("TE0",))) == []


def test_fix_appends_training_after_the_last_argument() -> None:
    src = (
        "import torch.nn as nn\nimport torch.nn.functional as F\n"
        "class N(nn.Module):\n    def forward(self, x):\n"
        "        a = F.dropout(x, 0.5,)\n"
        "        b = F.dropout(\n            x,\n            p=0.5,\n        )\n"
        "        return F.dropout(x, 0.5, True)\n"
    )
    result = assemble([analyze_file("m.py", src.encode())], ALL)
    fixed, n = apply_edits(src, result.edits["m.py"])
    assert n == 3
    assert "F.dropout(x, 0.5, training=self.training,)" in fixed
    assert "p=0.5, training=self.training,\n" in fixed
    assert "F.dropout(x, 0.5, self.training)" in fixed
    assert codes(fixed) == []


def test_columns_are_characters_not_bytes() -> None:
    (f,) = lint_source("é = 1; model.eval\n")
    assert (f.line, f.col) == (1, 8)


def test_encodings_and_bom() -> None:
    latin = "# -*- coding: latin-1 -*-\nname = 'café'\nmodel.eval\n".encode("latin-1")
    assert [f.code for f in assemble([analyze_file("l.py", latin)], ALL).findings] == ["TE001"]
    bom = b"\xef\xbb\xbfmodel.eval\n"
    assert [f.code for f in assemble([analyze_file("b.py", bom)], ALL).findings] == ["TE001"]
    bad = b"# -*- coding: no-such-codec -*-\nx = 1\n"
    assert [f.code for f in assemble([analyze_file("x.py", bad)], ALL).findings] == ["TE099"]


def test_null_bytes_and_deep_nesting_are_findings() -> None:
    assert codes("x = 1\x00\n") == ["TE099"]
    deep = "x = " + "(" * 500 + "1" + ")" * 500 + "\n"
    assert codes(deep) in (["TE099"], [])  # the parser may refuse it; the linter must not crash


SNIPPETS = [
    "model.eval\n", "import torch\nwith torch.no_grad():\n    model(x)\n", "class A(nn.Module):\n",
    "    def forward(self, x):\n", "        return F.dropout(x, 0.5)\n", "def train(self, mode=True):\n",
    "self.layers = [nn.Linear(2, 2)]\n", "for x in loader:\n", "    loss.backward()\n", "    model.eval()\n",
    "\x00", "\ufeff", "# noqa: TE0\n", "if self.training:\n", "    pass\n", "(((((", "'''", "\\\n", "\t", "é",
    "async def f():\n    async with a as b:\n        await model(x)\n", "lambda: model.eval\n", "@torch.no_grad()\n",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SNIPPETS), max_size=12), st.binary(max_size=40),
       st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"]))
def test_never_raises_on_mutated_source(parts: list[str], noise: bytes, encoding: str) -> None:
    text = "".join(parts)
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    for name, blob in (("m.py", data), ("m.py", data + noise), ("n.ipynb", data), ("n.ipynb", noise)):
        result = assemble([analyze_file(name, blob)], ALL)
        for f in result.findings:
            assert f.code.startswith("TE0") and f.line >= 0


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    lint_source(text, config=ALL)
