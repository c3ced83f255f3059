"""TE1xx — mode bugs caught while a job runs, by ``te.guard`` (see :mod:`traineval.guard`)."""

from __future__ import annotations

from traineval.diagnostics import Rule

RULES: list[Rule] = []
