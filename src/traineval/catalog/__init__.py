"""The catalog of diagnostic codes: every :class:`~traineval.diagnostics.Rule`, by code.

Codes live in three ranges, one file each: ``te0xx.py`` (source, found by ``traineval
lint``), ``te1xx.py`` (runtime, found by ``te.guard``) and ``te2xx.py`` (a live model, found
by ``te.describe`` and ``te.check``). The same bug keeps the same name in each range.

The docs pages ``docs/diagnostics/TExxx.md`` are generated from here::

    python -m traineval.catalog --write docs/diagnostics
"""

from __future__ import annotations

from typing import Any

from traineval.catalog.te0xx import RULES as _TE0XX
from traineval.catalog.te1xx import RULES as _TE1XX
from traineval.catalog.te2xx import RULES as _TE2XX
from traineval.diagnostics import Diagnostic, Rule
from traineval.errors import TraineValValueError

_RULES: dict[str, Rule] = {}
for _rule in (*_TE0XX, *_TE1XX, *_TE2XX):
    if _rule.code in _RULES:  # pragma: no cover - caught by the test suite
        raise RuntimeError(f"duplicate diagnostic code {_rule.code}")
    _RULES[_rule.code] = _rule


def all_rules() -> list[Rule]:
    """Every rule, sorted by code.

    >>> codes = [r.code for r in all_rules()]
    >>> codes == sorted(codes) and "TE201" in codes
    True
    """
    return sorted(_RULES.values(), key=lambda r: r.code)


def get_rule(code: str) -> Rule:
    """The rule for ``code`` (case-insensitive); ``ValueError`` naming close codes if unknown.

    >>> get_rule("te201").name
    'mixed-modes'
    """
    key = code.strip().upper()
    try:
        return _RULES[key]
    except KeyError:
        known = ", ".join(sorted(c for c in _RULES if c[:3] == key[:3])[:8]) or "see `traineval rules`"
        raise TraineValValueError(f"unknown diagnostic code {code!r}; known codes: {known}") from None


def make(code: str, where: str = "", **values: Any) -> Diagnostic:
    """Build a :class:`Diagnostic` for catalog ``code``, formatting its message and fix.

    >>> from traineval.catalog import make
    >>> make("TE201", where="drop", module="drop", type="Dropout").code
    'TE201'
    """
    rule = get_rule(code)
    return Diagnostic(
        code=rule.code,
        severity=rule.severity,
        message=rule.format_message(values),
        where=where,
        fix=rule.format_fix(values),
        data=dict(values),
    )


def render_markdown(rule: Rule) -> str:
    """The docs page of ``rule`` (Markdown), in the ruff rule-page layout.

    >>> print(render_markdown(get_rule("TE201")).splitlines()[0])
    # TE201 `mixed-modes`
    """
    lines = [
        f"# {rule.code} `{rule.name}`",
        "",
        f"**Severity:** {rule.severity.value}"
        + ("" if rule.default_enabled else " · off by default")
        + (" · autofix available" if rule.fixable else ""),
        "",
        "## What it does",
        "",
        rule.summary.strip(),
        "",
        f"Message: *{rule.message}*",
        "",
        "## Why is this bad?",
        "",
        rule.why.strip(),
        "",
        "## Example",
        "",
        "```python",
        rule.wrong.strip("\n"),
        "```",
        "",
        "## Use instead",
        "",
        "```python",
        rule.right.strip("\n"),
        "```",
        "",
        f"Fix: {rule.fix}",
    ]
    if rule.known_problems:
        lines += ["", "## Known problems", "", rule.known_problems.strip()]
    refs = list(rule.references)
    if rule.claims:
        refs.insert(0, "Article claims: " + ", ".join(rule.claims) + " ([the article's claims](../article.md))")
    if rule.related:
        refs.append("Related codes: " + ", ".join(f"[{c}]({c}.md)" for c in rule.related))
    if refs:
        lines += ["", "## References", ""] + [f"- {r}" for r in refs]
    return "\n".join(lines) + "\n"


def render_index(rules: list[Rule] | None = None) -> str:
    """The catalog page (Markdown): one table row per code, linking to its page.

    >>> "[TE201](TE201.md)" in render_index()
    True
    """
    rules = all_rules() if rules is None else rules
    ranges = [
        ("TE0", "Found in source — `traineval lint`"),
        ("TE1", "Found while a job runs — `te.guard`"),
        ("TE2", "Found on a live model — `te.describe`, `te.check`"),
    ]
    lines = [
        "# Diagnostic codes",
        "",
        "Every finding traineval reports has a stable code. The same bug keeps the same name in",
        "each range, so it can be followed from the linter to the guard to the model check.",
        "This page and the pages it links to are generated from the catalog in the code",
        "(`python -m traineval.catalog --write docs/diagnostics`); a test fails when they drift.",
    ]
    for prefix, title in ranges:
        chosen = [r for r in rules if r.code.startswith(prefix)]
        if not chosen:
            continue
        lines += ["", f"## {title}", "", "| code | name | severity | what it finds |", "| --- | --- | --- | --- |"]
        for r in chosen:
            severity = r.severity.value + ("" if r.default_enabled else ", off by default")
            first = r.summary.strip().split(". ")[0].rstrip(".").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| [{r.code}]({r.code}.md) | `{r.name}` | {severity} | {first} |")
    return "\n".join(lines) + "\n"


__all__ = ["all_rules", "get_rule", "make", "render_index", "render_markdown"]
