"""The diagnostic catalog: codes, docs pages generated from it, no drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from traineval.catalog import all_rules, get_rule, make, render_index, render_markdown
from traineval.diagnostics import Severity

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "docs" / "diagnostics"
RANGES = {"TE0": "lint", "TE1": "guard", "TE2": "model"}


def test_codes_are_well_formed_and_unique():
    rules = all_rules()
    assert len({r.code for r in rules}) == len(rules)
    for prefix in RANGES:  # a name is unique within a range; the same bug keeps its name across ranges
        names = [r.name for r in rules if r.code.startswith(prefix)]
        assert len(set(names)) == len(names), f"duplicate names in {prefix}xx: {names}"
    for r in rules:
        assert re.fullmatch(r"TE\d{3}", r.code), r.code
        assert re.fullmatch(r"[a-z0-9-]+", r.name), r.name
        assert r.summary and r.why and r.wrong.strip() and r.right.strip() and r.fix, r.code
        assert isinstance(r.severity, Severity)


def test_every_code_has_its_generated_page_and_no_page_is_stale():
    pages = {p.stem for p in PAGES.glob("TE*.md")}
    codes = {r.code for r in all_rules()}
    assert codes - pages == set(), f"missing pages (run python -m traineval.catalog --write {PAGES})"
    assert pages - codes == set(), "pages for codes that no longer exist"
    for rule in all_rules():
        assert (PAGES / f"{rule.code}.md").read_text(encoding="utf-8") == render_markdown(rule), (
            f"{rule.code}.md is out of date: run python -m traineval.catalog --write docs/diagnostics")


def test_catalog_index_page_is_up_to_date():
    assert (PAGES / "index.md").read_text(encoding="utf-8") == render_index()


def test_no_page_names_a_code_that_does_not_exist():
    codes = {r.code for r in all_rules()}
    texts = [ROOT / "README.md", *ROOT.joinpath("docs").rglob("*.md")]
    for path in texts:
        named = set(re.findall(r"\bTE\d{3}\b", path.read_text(encoding="utf-8")))
        assert named <= codes, f"{path.relative_to(ROOT)} names unknown codes {sorted(named - codes)}"


def test_related_codes_exist():
    codes = {r.code for r in all_rules()}
    for r in all_rules():
        assert set(r.related) <= codes, (r.code, r.related)


def test_make_formats_message_and_fix():
    d = make("TE201", where="head.drop", module="head.drop", type="Dropout")
    assert d.message.startswith("`head.drop` (Dropout)") and d.severity is Severity.ERROR
    assert "{" not in d.message and d.to_dict()["doc"] == "docs/diagnostics/TE201.md"


def test_unknown_code_error_names_close_codes():
    with pytest.raises(ValueError, match="unknown diagnostic code 'TE2999'.*TE201"):
        get_rule("TE2999")
