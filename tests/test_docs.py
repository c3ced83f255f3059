"""Every Python example in the docs runs (one namespace per page, in order).

A block can opt out with an HTML comment on the line before its fence,
``<!-- no-test: reason -->`` — for instance code that needs a framework the test
environment does not install. Such blocks are listed so that they stay few.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "diagnostics" not in p.parts)
FENCE = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)```", re.S)


def blocks(page: Path) -> list[tuple[int, str, str | None]]:
    text = "\n" + page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        skip = re.match(r"\s*<!--\s*no-test:?(.*?)-->", m.group("before"))
        line = text.count("\n", 0, m.start("code"))
        out.append((line, m.group("code"), skip.group(1).strip() if skip else None))
    return out


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT / "docs")) for p in PAGES])
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"__docs_{page.stem}__"}
    for line, code, skip in blocks(page):
        if skip is not None:
            assert skip, f"{page.name}:{line}: a no-test block must say why"
            continue
        if code.lstrip().startswith(">>>"):  # an interactive session: check its output too
            run_doctest(code, namespace, f"{page.name}:{line}")
        else:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)


def run_doctest(code: str, namespace: dict, name: str) -> None:
    import doctest

    test = doctest.DocTestParser().get_doctest(code, namespace, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)


def test_skipped_blocks_are_few():
    skipped = [(p.name, line) for p in PAGES for line, _, skip in blocks(p) if skip is not None]
    assert len(skipped) <= 12, skipped


def test_docs_pages_listed_in_mkdocs_nav_exist():
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    missing = [n for n in nav if not (ROOT / "docs" / n).exists()]
    assert not missing, missing



def test_every_diagnostic_page_is_in_the_nav_and_broken_links_fail_the_build():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in (ROOT / "docs" / "diagnostics").glob("TE*.md"))
    assert pages and [p for p in pages if f"diagnostics/{p}" not in config] == []
    validation = config.split("\nvalidation:\n", 1)[1].split("\n\n", 1)[0]
    for setting in ("unrecognized_links: warn", "anchors: warn", "not_found: warn"):
        assert setting in validation  # with strict: true, a warning fails the build
    assert "\nstrict: true\n" in config and "show_bases: false" in config


def test_settings_reference_is_generated_from_the_config_schema():
    import importlib.util

    from traineval.lint import config

    spec = importlib.util.spec_from_file_location("settings_reference", ROOT / "docs/_ext/settings_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.DESCRIPTIONS) == set(config._KEYS)  # every key documented, no stale one
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert page == module.render(), "run: PYTHONPATH=src python docs/_ext/settings_reference.py --write"
    for key in config._KEYS:
        assert f"| `{key}` |" in page
