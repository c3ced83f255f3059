"""Machine output: JSON records, SARIF 2.1.0, GitHub Actions workflow commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traineval.diagnostics import doc_path, doc_url
from traineval.lint.report.finding import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def finding_dict(f: Finding) -> dict[str, Any]:
    """One JSON record: code, severity, message, fix, file, 1-based location and end, doc."""
    d = f.diagnostic
    return {
        "code": d.code,
        "severity": d.severity.value,
        "message": d.message,
        "fix": d.fix,
        "fixable": f.fixable,
        "filename": f.path or None,
        "where": f.location,
        "cell": f.cell,
        "location": {"row": f.line, "column": f.col} if f.line else None,
        "end_location": {"row": f.end_line, "column": f.end_col} if f.line else None,
        "doc": doc_path(d.code),
        "url": doc_url(d.code),
    }


def render_json(findings: Sequence[Finding]) -> str:
    """A JSON array of :func:`finding_dict` records."""
    return json.dumps([finding_dict(f) for f in findings], indent=2)


def _uri(path: str) -> str:
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return p.as_posix()


def sarif_log(findings: Sequence[Finding]) -> dict[str, Any]:
    """The SARIF 2.1.0 log (a dict) of ``findings``, with every rule they use in the driver."""
    from traineval import __version__
    from traineval.catalog import get_rule

    codes = sorted({f.code for f in findings})
    rules = []
    for code in codes:
        r = get_rule(code)
        rules.append({
            "id": r.code,
            "name": r.name,
            "shortDescription": {"text": r.summary.split(". ")[0].rstrip(".") + "."},
            "fullDescription": {"text": r.summary},
            "help": {"text": f"{r.why}\n\nFix: {r.fix}", "markdown": f"{r.why}\n\n**Fix:** {r.fix}"},
            "helpUri": doc_url(r.code),
            "defaultConfiguration": {"level": _LEVEL[r.severity.value], "enabled": r.default_enabled},
            "properties": {"tags": ["pytorch", "train-eval-mode"]},
        })
    index = {c: i for i, c in enumerate(codes)}
    results = []
    for f in findings:
        d = f.diagnostic
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": _LEVEL[d.severity.value],
            "message": {"text": d.message + (f" (fix: {d.fix})" if d.fix else "")},
        }
        if f.path:
            region: dict[str, int] = {"startLine": max(f.line, 1), "startColumn": max(f.col, 1)}
            if f.end_line >= f.line and f.line:
                region["endLine"] = f.end_line
                region["endColumn"] = max(f.end_col, 1)
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.path)}, "region": region}}]
        elif d.where:
            result["locations"] = [{"logicalLocations": [{"fullyQualifiedName": d.where, "kind": "module"}]}]
        if f.cell is not None:
            result["properties"] = {"notebookCell": f.cell}
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "traineval",
                "version": __version__,
                "informationUri": "https://github.com/traineval/traineval",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def render_sarif(findings: Sequence[Finding]) -> str:
    """The SARIF 2.1.0 log as JSON text."""
    return json.dumps(sarif_log(findings), indent=2)


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def render_github(findings: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands (``::error file=...,line=...::message``)."""
    out = []
    for f in findings:
        d = f.diagnostic
        level = {"error": "error", "warning": "warning", "info": "notice"}[d.severity.value]
        props = []
        if f.path:
            props.append(f"file={_escape_prop(f.path)}")
            if f.line:
                props += [f"line={f.line}", f"col={f.col}", f"endLine={f.end_line}", f"endColumn={f.end_col}"]
        cell = f" (cell {f.cell})" if f.cell is not None else ""
        props.append(f"title={_escape_prop(d.code + ' ' + d.severity.value)}")
        out.append(f"::{level} {','.join(props)}::{_escape_data(f'{d.code} {d.message}{cell}')}")
    return "\n".join(out)
