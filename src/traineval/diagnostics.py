"""One vocabulary for every finding: the :class:`Diagnostic` record and the :class:`Rule` catalog.

Whatever finds a mode bug — the linter (``TE0xx``), the runtime guard (``TE1xx``) or a check
of a live model (``TE2xx``) — reports it as a :class:`Diagnostic`. Each code is described
once, by a :class:`Rule` in :mod:`traineval.catalog` (whose ``make`` builds a diagnostic from
its code); messages are formatted from the rule's template at output time, and the docs pages
in ``docs/diagnostics/`` are generated from the same rule (``python -m traineval.catalog
--write docs/diagnostics``). Where a code's page is, is said here once: :func:`doc_path`,
:func:`doc_url`, :func:`doc_command`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


def doc_path(code: str) -> str:
    """Where a code's page lives in the repository (``docs/diagnostics/TE007.md``).

    >>> doc_path("TE007")
    'docs/diagnostics/TE007.md'
    """
    return f"docs/diagnostics/{code}.md"


DOCS_URL = "https://github.com/traineval/traineval/blob/main/docs/diagnostics/{code}.md"


def doc_url(code: str) -> str:
    """The web address of a code's page.

    >>> doc_url("TE007").endswith("/docs/diagnostics/TE007.md")
    True
    """
    return DOCS_URL.format(code=code)


def doc_command(code: str) -> str:
    """The command that prints a code's page wherever traineval is installed.

    >>> doc_command("TE102")
    'traineval rule TE102'
    """
    return f"traineval rule {code}"


class Severity(str, enum.Enum):
    """How bad a finding is. ``error`` makes CLIs exit 1; ``info`` never does."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """2 for errors, 1 for warnings, 0 for info (for sorting and worst-of)."""
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True)
class Rule:
    """A catalog entry: one stable code, what it means, and how to fix it.

    ``message`` and ``fix`` are ``str.format`` templates filled from a diagnostic's
    ``values``. ``wrong`` and ``right`` are short code examples for the docs page.

    >>> r = Rule("TE999", "example-rule", Severity.WARNING, "`{name}` is odd", "do less",
    ...          summary="An example.", why="Because.", wrong="x", right="y")
    >>> r.format_message({"name": "model"})
    '`model` is odd'
    """

    code: str
    name: str
    severity: Severity
    message: str
    fix: str
    summary: str
    why: str
    wrong: str
    right: str
    known_problems: str = ""
    claims: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    default_enabled: bool = True
    fixable: bool = False

    def format_message(self, values: dict[str, Any] | None = None) -> str:
        """The rule's message with ``values`` filled in (missing keys stay as written)."""
        return _safe_format(self.message, values or {})

    def format_fix(self, values: dict[str, Any] | None = None) -> str:
        """The rule's fix hint with ``values`` filled in."""
        return _safe_format(self.fix, values or {})

    @property
    def doc_path(self) -> str:
        """Path of the rule's page relative to the repository root."""
        return doc_path(self.code)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _safe_format(template: str, values: dict[str, Any]) -> str:
    return template.format_map(_Missing(values))


@dataclass(frozen=True)
class Diagnostic:
    """One finding.

    ``where`` is ``file:line:col`` for the linter and a module path such as
    ``encoder.layers.3.dropout`` (``""`` is the root model) for runtime findings.

    >>> d = Diagnostic("TE201", Severity.WARNING, "mixed modes", where="head.drop", fix="call eval()")
    >>> d.to_dict()["where"]
    'head.drop'
    """

    code: str
    severity: Severity
    message: str
    where: str = ""
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        where = f"{self.where or '<model>'}: " if self.where is not None else ""
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}{self.code} [{self.severity.value}] {self.message}{fix}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (code, severity, message, where, fix, doc, data)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "where": self.where,
            "fix": self.fix,
            "doc": doc_path(self.code),
            "data": _jsonable(self.data),
        }


def worst(diagnostics: list[Diagnostic]) -> Severity | None:
    """The most severe level among ``diagnostics`` (``None`` when empty)."""
    if not diagnostics:
        return None
    return max((d.severity for d in diagnostics), key=lambda s: s.rank)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)
