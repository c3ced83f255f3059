"""What ``te.check`` returns: :class:`ContractReport` and its :class:`StatGap` rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from traineval.diagnostics import Diagnostic, Severity


@dataclass(frozen=True)
class StatGap:
    """How far one BatchNorm's running statistics are from the example batch's statistics.

    ``mean_shift``: root-mean-square over channels of ``|batch mean - running mean| /
    running std``. ``scale_gap``: ``exp`` of the root-mean-square over channels of ``|log(batch
    std / running std)|`` (1.0 when the spreads agree, 2.0 when off by a factor of two).
    ``samples_per_channel`` is how many values each channel's batch statistics come from.
    """

    module: str
    type: str
    mean_shift: float
    scale_gap: float
    samples_per_channel: int
    never_updated: bool
    flagged: bool


@dataclass
class ContractReport:
    """What :func:`check` found: diagnostics (``TE210``–``TE217``), what each check concluded,
    the BatchNorm statistics gaps, and how many forwards it took."""

    diagnostics: list[Diagnostic]
    checks: dict[str, str]
    stat_gaps: list[StatGap]
    batch_size: int
    samples: list[int]
    forwards: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no error-level finding was made (warnings and info do not count)."""
        return not self.errors

    @property
    def errors(self) -> list[Diagnostic]:
        """The error-level findings."""
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        """The warning-level findings."""
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def codes(self) -> list[str]:
        """The codes found, sorted, each once."""
        return sorted({d.code for d in self.diagnostics})

    def __str__(self) -> str:
        head = (f"eval contract: {len(self.errors)} error(s), {len(self.warnings)} warning(s) — batch of "
                f"{self.batch_size}, samples {self.samples} checked alone, {self.forwards} forwards")
        lines = [head]
        width = max(map(len, self.checks), default=0)
        lines += [f"  {name:<{width}}  {verdict}" for name, verdict in self.checks.items()]
        if self.diagnostics:
            lines.append("findings:")
            lines += [f"  {d}" for d in self.diagnostics]
        flagged = [g for g in self.stat_gaps if g.flagged]
        if self.stat_gaps:
            lines.append(f"BatchNorm statistics gap ({len(flagged)} of {len(self.stat_gaps)} flagged):")
            for g in self.stat_gaps:
                mark = "!" if g.flagged else " "
                lines.append(f"  {mark} {g.module} ({g.type}): mean shift {g.mean_shift:.2f} std, "
                             f"scale gap x{g.scale_gap:.2f}" + (" — never updated" if g.never_updated else ""))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "batch_size": self.batch_size,
            "samples": self.samples,
            "forwards": self.forwards,
            "checks": dict(self.checks),
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "stat_gaps": [asdict(g) for g in self.stat_gaps],
            "notes": list(self.notes),
        }
