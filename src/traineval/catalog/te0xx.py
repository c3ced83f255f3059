"""TE0xx — mode bugs found in source by ``traineval lint`` (see :mod:`traineval.lint`)."""

from __future__ import annotations

from traineval.diagnostics import Rule

RULES: list[Rule] = []
