"""A diagnostic with an optional file location: what every output format prints."""

from __future__ import annotations

from dataclasses import dataclass

from traineval.diagnostics import Diagnostic, Severity


@dataclass(frozen=True)
class Finding:
    """A diagnostic with an optional location; ``line``/``col`` are 1-based (0: no location)."""

    diagnostic: Diagnostic
    path: str = ""
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0
    cell: int | None = None
    fixable: bool = False

    @property
    def code(self) -> str:
        """The diagnostic's code."""
        return self.diagnostic.code

    @property
    def severity(self) -> Severity:
        """The diagnostic's severity."""
        return self.diagnostic.severity

    @property
    def location(self) -> str:
        """``path:line:col`` (``path:cell 3:line:col`` in a notebook), or the diagnostic's ``where``."""
        if not self.path:
            return self.diagnostic.where or "<model>"
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.col}" if self.line else self.path

    def sort_key(self) -> tuple[str, int, int, int, str]:
        """Order by file, then position, then code (deterministic output)."""
        return (self.path, self.cell or 0, self.line, self.col, self.code)
