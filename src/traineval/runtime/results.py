"""What the runtime guard reports and hands back: findings, :class:`GuardError`, :class:`GuardSummary`."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from traineval import _torch
from traineval.catalog import get_rule, make
from traineval.diagnostics import Diagnostic, doc_command
from traineval.errors import TraineValError, TraineValWarning
from traineval.runtime.options import OnFinding

logger = logging.getLogger("traineval.guard")

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


def message(diag: Diagnostic) -> str:
    """The one-line text of a guard finding: code, message, fix and where to read more."""
    return f"{diag.code} {diag.message} (fix: {diag.fix}; see `{doc_command(diag.code)}`)"


class GuardError(TraineValError, RuntimeError):
    """A guard finding raised with ``on="raise"``; the finding is in ``.diagnostic``.

    >>> import traineval as te
    >>> from traineval.catalog import make
    >>> err = te.GuardError(make("TE105", "bn", module="bn", type="BatchNorm1d", count=2,
    ...                          shape="(2, 8)", minimum=16, extra=""))
    >>> err.diagnostic.code
    'TE105'
    """

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(message(diagnostic))
        self.diagnostic = diagnostic


@dataclass(frozen=True)
class GuardSummary:
    """How often each code fired, per module path (``""`` is the guarded model itself).

    >>> s = GuardSummary({"TE102": {"": 3}}, label="Net")
    >>> s.total, str(s).splitlines()[1].split()
    (3, ['TE102', 'training-step-in-eval-mode', 'Net', '3'])
    """

    counts: dict[str, dict[str, int]]
    label: str = "model"
    notices: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Number of occurrences over every code and module."""
        return sum(sum(per.values()) for per in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"counts": {code: {where: n}}, "total": n, "notices": [...]}``."""
        return {"counts": self.counts, "total": self.total, "notices": list(self.notices)}

    def __str__(self) -> str:
        if not self.counts:
            lines = [f"te.guard({self.label}): no findings"]
        else:
            lines = [f"te.guard({self.label}): {self.total} occurrence(s)"]
            for code in sorted(self.counts):
                name = get_rule(code).name
                for where, n in sorted(self.counts[code].items()):
                    lines.append(f"  {code}  {name}  {where or self.label}  {n}")
        return "\n".join(lines + [f"  note: {n}" for n in self.notices])


class Findings:
    """One guard's findings: counted per (code, module), delivered as ``on`` says."""

    def __init__(self, label: str, on: OnFinding, once: bool) -> None:
        self.label = label
        self.on = on
        self.once = once
        self.delivered: list[Diagnostic] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.notices: list[str] = []

    def report(self, code: str, where: str, **values: Any) -> None:
        """Count an occurrence; deliver it unless ``once`` and already delivered."""
        key = (code, where)
        self.counts[key] += 1
        if self.once and self.counts[key] > 1:
            return
        diag = make(code, where, **values)
        rank = _world_rank()
        if rank is not None:
            diag = dataclasses.replace(
                diag, message=f"{diag.message} [rank {rank}]", data={**diag.data, "rank": rank}
            )
        self.delivered.append(diag)
        on = self.on
        if on == "warn":
            warnings.warn(message(diag), TraineValWarning, stacklevel=_user_stacklevel())
        elif on == "raise":
            raise GuardError(diag)
        elif on == "log":
            level = logging.ERROR if diag.severity.rank == 2 else logging.WARNING
            logger.log(level, "%s", message(diag))
        else:
            on(diag)

    def notice_compiled(self) -> None:
        """Say once that forward-time rules cannot see inside compiled code."""
        if self.notices:
            return
        text = (
            f"te.guard({self.label}): the model runs under torch.compile (or its forward is called "
            "directly, not through `model(...)`); forward-time rules (TE101, TE103, TE104, TE105) "
            "are not checked inside compiled code, step-time rules (TE102, TE106) still are. Guard "
            "an uncompiled run for full coverage."
        )
        self.notices.append(text)
        if self.on == "log":
            logger.warning("%s", text)
        else:
            warnings.warn(text, TraineValWarning, stacklevel=_user_stacklevel())

    def summary(self) -> GuardSummary:
        """Every occurrence counted per code and module."""
        counts: dict[str, dict[str, int]] = {}
        for (code, where), n in sorted(self.counts.items()):
            counts.setdefault(code, {})[where] = n
        return GuardSummary(counts, self.label, tuple(self.notices))


def _world_rank() -> int | None:
    """This process's rank when there are several, else ``None``."""
    _, rank, world = _torch.distributed()
    return rank if world > 1 else None


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside torch and traineval."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith((_PKG_DIR, _TORCH_DIR)) or filename.startswith("<")):
            return level
        frame = frame.f_back  # type: ignore[assignment]  # None ends the loop
        level += 1
    return 1
