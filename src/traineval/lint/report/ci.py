"""Formats CI systems read: JSON lines, GitLab code quality (Code Climate), JUnit XML."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from xml.etree import ElementTree as ET

from traineval.lint.report.finding import Finding
from traineval.lint.report.machine import finding_dict

_GITLAB_SEVERITY = {"error": "major", "warning": "minor", "info": "info"}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (a TE099 message may quote any)."""
    return _NOT_XML.sub("\ufffd", text)


def render_json_lines(findings: Sequence[Finding]) -> str:
    """One JSON record (as in ``--format json``) per line."""
    return "\n".join(json.dumps(finding_dict(f)) for f in findings)


def render_gitlab(findings: Sequence[Finding]) -> str:
    """GitLab's code quality report: a JSON array of Code Climate issues, with a stable
    fingerprint per finding (code, file, message, and the occurrence among identical ones)."""
    seen: dict[str, int] = {}
    issues = []
    for f in findings:
        d = f.diagnostic
        key = f"{d.code}\0{f.path}\0{d.message}"
        seen[key] = seen.get(key, 0) + 1
        fingerprint = hashlib.sha256(f"{key}\0{seen[key]}".encode()).hexdigest()
        issues.append({
            "description": f"{d.code} {d.message}",
            "check_name": d.code,
            "fingerprint": fingerprint,
            "severity": _GITLAB_SEVERITY[d.severity.value],
            "location": {"path": f.path or (d.where or "<model>"),
                         "lines": {"begin": max(f.line, 1), "end": max(f.end_line, f.line, 1)}},
        })
    return json.dumps(issues, indent=2)


def render_junit(findings: Sequence[Finding]) -> str:
    """JUnit XML: one test suite per file, one failing test case per finding."""
    suites = ET.Element("testsuites", name="traineval lint", tests=str(len(findings)), failures=str(len(findings)))
    by_file: dict[str, list[Finding]] = {}
    for f in findings:
        by_file.setdefault(f.path or (f.diagnostic.where or "<model>"), []).append(f)
    for path, items in by_file.items():
        suite = ET.SubElement(suites, "testsuite", name=_xml(path), tests=str(len(items)), failures=str(len(items)))
        for f in items:
            d = f.diagnostic
            case = ET.SubElement(suite, "testcase", name=_xml(f"{d.code} {f.location}"), classname=_xml(path),
                                 file=_xml(f.path), line=str(f.line))
            failure = ET.SubElement(case, "failure", message=_xml(d.message), type=d.code)
            failure.text = _xml(f"{f.location}: {d.code} {d.message}" + (f"\nfix: {d.fix}" if d.fix else ""))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
