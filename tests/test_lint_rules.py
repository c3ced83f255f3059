"""Every rule against its fixture: ``tests/lint_fixtures/te0xx.py`` (and ``*_project/`` folders,
linted as one project). Offending lines carry a trailing ``# TE0xx`` comment; lines without
one are look-alikes that must stay silent (flake8-bugbear's eval-files layout)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from traineval.catalog import all_rules
from traineval.lint import LintConfig, lint_paths

FIXTURES = Path(__file__).parent / "lint_fixtures"
EXPECT = re.compile(r"#\s*(TE\d{3}(?:\s*,\s*TE\d{3})*)\s*$")
CONFIG = LintConfig(extend_select=("TE08",), respect_gitignore=False, jobs=1)


def _cases() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if p.suffix == ".py" or (p.is_dir() and p.name.endswith("_project")))


def _expected(target: Path) -> set[tuple[str, int, str]]:
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    out = set()
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), start=1):
            m = EXPECT.search(line)
            if m and "noqa" not in line:
                for code in re.split(r"\s*,\s*", m.group(1)):
                    out.add((str(f), i, code))
    return out


@pytest.mark.parametrize("target", _cases(), ids=lambda p: p.name)
def test_fixture(target: Path) -> None:
    result = lint_paths([str(target)], CONFIG)
    found = {(f.path, f.line, f.code) for f in result.findings}
    expected = _expected(target)
    assert found - expected == set(), "false positives"
    assert expected - found == set(), "missed"


def test_every_lint_rule_has_a_fixture() -> None:
    covered = {code for target in _cases() for (_, _, code) in _expected(target)}
    lint_codes = {r.code for r in all_rules() if r.code.startswith("TE0") and r.code != "TE090"}
    assert lint_codes - covered == set()
