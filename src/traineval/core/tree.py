"""The mode tree of a model: every module's mode, which ones care, and what looks wrong.

>>> import torch.nn as nn, traineval as te
>>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5)).eval()
>>> _ = model[2].train()                       # dropout left on inside an eval model
>>> report = te.describe(model)
>>> [d.code for d in report.findings], report.findings[0].where
(['TE201'], '2')
>>> print(report)                              # doctest: +NORMALIZE_WHITESPACE
Sequential  eval
├── 0  Linear  eval
├── 1  BatchNorm1d  eval  [batchnorm]
└── 2  Dropout  TRAIN  [dropout]  ! TE201
4 modules · 2 mode-sensitive (1 training, 1 eval) · 1 finding
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from traineval.catalog import make
from traineval.core import mixed, pins
from traineval.core.sensitivity import classify
from traineval.diagnostics import Diagnostic, Severity, worst
from traineval.errors import require_module


@dataclass(frozen=True)
class ModuleMode:
    """One module's entry in a :class:`ModeReport`."""

    name: str
    type: str
    training: bool
    depth: int
    kind: str | None = None
    reason: str = ""
    policies: tuple[str, ...] = ()
    pinned: bool | None = None
    aliases: tuple[str, ...] = ()

    @property
    def sensitive(self) -> bool:
        """Whether the module's behaviour depends on the mode (``unknown`` counts as not)."""
        return self.kind is not None and self.kind != "unknown"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of this entry."""
        return {
            "name": self.name,
            "type": self.type,
            "mode": "train" if self.training else "eval",
            "sensitive": self.sensitive,
            "kind": self.kind,
            "reason": self.reason,
            "policies": list(self.policies),
            "pinned": None if self.pinned is None else ("train" if self.pinned else "eval"),
            "aliases": list(self.aliases),
        }


@dataclass
class ModeReport:
    """What :func:`describe` found: ``modules`` (tree order), ``findings``, ``counts``.

    ``str(report)`` is a plain-text tree; ``rich.print(report)`` a coloured one when rich is
    installed; ``report.to_dict()`` is JSON-ready.
    """

    model_type: str
    training: bool
    modules: list[ModuleMode]
    findings: list[Diagnostic] = field(default_factory=list)

    @property
    def sensitive(self) -> list[ModuleMode]:
        """The mode-sensitive modules."""
        return [m for m in self.modules if m.sensitive]

    @property
    def counts(self) -> dict[str, Any]:
        """Counts of modules, modes, sensitive modules by kind, and findings by code."""
        sens = self.sensitive
        return {
            "modules": len(self.modules),
            "training": sum(m.training for m in self.modules),
            "eval": sum(not m.training for m in self.modules),
            "sensitive": len(sens),
            "sensitive_training": sum(m.training for m in sens),
            "sensitive_eval": sum(not m.training for m in sens),
            "by_kind": dict(Counter(m.kind for m in sens)),
            "findings": dict(Counter(d.code for d in self.findings)),
        }

    @property
    def ok(self) -> bool:
        """True when there is no warning- or error-level finding."""
        w = worst(self.findings)
        return w is None or w is Severity.INFO

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: model type and mode, counts, modules, findings."""
        return {
            "model": self.model_type,
            "mode": "train" if self.training else "eval",
            "counts": self.counts,
            "modules": [m.to_dict() for m in self.modules],
            "findings": [d.to_dict() for d in self.findings],
        }

    def _line(self, m: ModuleMode, flagged: dict[str, list[str]]) -> list[str]:
        parts = [m.name.rsplit(".", 1)[-1]] if m.depth else []
        parts.append(m.type)
        differs = m.training != self.training
        parts.append(("TRAIN" if m.training else "EVAL") if differs else ("train" if m.training else "eval"))
        if m.kind:
            parts.append(f"[{m.kind}]")
        if m.policies:
            parts.append("pinned by " + ", ".join(dict.fromkeys(m.policies)))
        if m.aliases:
            parts.append("(also " + ", ".join(m.aliases) + ")")
        if m.name in flagged:
            parts.append("! " + " ".join(flagged[m.name]))
        return parts

    def render(self, *, sensitive_only: bool = False) -> str:
        """The plain-text tree; ``sensitive_only`` keeps sensitive modules and their ancestors.

        A mode that differs from the root's is in capitals (``TRAIN``/``EVAL``).
        """
        flagged: dict[str, list[str]] = {}
        for d in self.findings:
            flagged.setdefault(d.where, []).append(d.code)
        keep = self._kept(sensitive_only)
        rows = [m for m in self.modules if m.name in keep]
        lines: list[str] = []
        prefix_stack: list[str] = []
        for i, m in enumerate(rows):
            text = "  ".join(self._line(m, flagged))
            if m.depth == 0:
                lines.append(text)
                continue
            last = not any(r.depth == m.depth for r in _until_shallower(rows[i + 1 :], m.depth))
            del prefix_stack[m.depth - 1 :]
            lines.append("".join(prefix_stack) + ("└── " if last else "├── ") + text)
            prefix_stack.append("    " if last else "│   ")
        c = self.counts
        n_find = len(self.findings)
        lines.append(
            f"{c['modules']} module{'s' * (c['modules'] != 1)} · {c['sensitive']} mode-sensitive "
            f"({c['sensitive_training']} training, {c['sensitive_eval']} eval) · "
            f"{n_find} finding{'s' * (n_find != 1)}"
        )
        return "\n".join(lines)

    def _kept(self, sensitive_only: bool) -> set[str]:
        if not sensitive_only:
            return {m.name for m in self.modules}
        keep = {""}
        for m in self.modules:
            if m.sensitive or m.policies or any(d.where == m.name for d in self.findings):
                parts = m.name.split(".")
                keep.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        return keep

    def __str__(self) -> str:
        return self.render()

    def __rich__(self) -> Any:
        from rich.text import Text
        from rich.tree import Tree

        flagged: dict[str, list[str]] = {}
        for d in self.findings:
            flagged.setdefault(d.where, []).append(d.code)

        def label(m: ModuleMode) -> Text:
            t = Text()
            if m.depth:
                t.append(m.name.rsplit(".", 1)[-1] + " ", style="bold")
            t.append(m.type + " ", style="cyan")
            style = "green" if m.training else "blue"
            if m.training != self.training:
                style = "bold yellow"
            t.append("train" if m.training else "eval", style=style)
            if m.kind:
                t.append(f" [{m.kind}]", style="magenta")
            if m.policies:
                t.append(" pinned by " + ", ".join(dict.fromkeys(m.policies)), style="dim")
            if m.name in flagged:
                t.append(" ! " + " ".join(flagged[m.name]), style="bold red")
            return t

        root = Tree(label(self.modules[0]))
        nodes = {"": root}
        for m in self.modules[1:]:
            parent = m.name.rsplit(".", 1)[0] if "." in m.name else ""
            nodes[m.name] = nodes.get(parent, root).add(label(m))
        return root


def _until_shallower(rows: list[ModuleMode], depth: int) -> list[ModuleMode]:
    out = []
    for r in rows:
        if r.depth < depth:
            break
        out.append(r)
    return out


def describe(model: nn.Module) -> ModeReport:
    """Every module's mode, which modules are mode-sensitive and why, and mixed-mode findings.

    Findings: ``TE201`` a sensitive module training inside a model in eval mode, ``TE202``
    one in eval inside a training model — unless a policy (``te.freeze_batchnorm``,
    ``te.mc_dropout``) explains it; ``TE203`` a policy overridden by assigning ``.training``;
    ``TE204`` (info) a custom module whose source cannot be read. When a whole submodule is
    in the other mode, it is reported once, at that submodule. Does not change the model.

    >>> import traineval as te, traineval.examples as ex
    >>> report = te.describe(ex.small_resnet())
    >>> report.counts["by_kind"], report.ok
    ({'batchnorm': 9, 'dropout': 1}, True)
    """
    require_module(model)
    root_flag = model.training
    seen: dict[int, int] = {}
    entries: list[ModuleMode] = []
    alias_names: dict[int, list[str]] = {}
    by_name: dict[str, nn.Module] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) in seen:
            alias_names.setdefault(id(module), []).append(name)
            continue
        seen[id(module)] = len(entries)
        by_name[name] = module
        found = classify(module, name)
        entries.append(
            ModuleMode(
                name=name,
                type=type(module).__name__,
                training=module.training,
                depth=0 if not name else name.count(".") + 1,
                kind=None if found is None else found.kind,
                reason="" if found is None else found.reason,
                policies=tuple(pins.pin_owners(module)),
                pinned=pins.pinned_flag(module),
            )
        )
    for mid, names in alias_names.items():
        i = seen[mid]
        entries[i] = dataclasses.replace(entries[i], aliases=tuple(names))
    return ModeReport(type(model).__name__, root_flag, entries, _findings(entries, root_flag, by_name))


def _frozen(by_name: dict[str, nn.Module], name: str) -> bool:
    """:func:`traineval.core.mixed.frozen` for the module named ``name`` (its parent looked up by name)."""
    parent = by_name.get(name.rsplit(".", 1)[0] if "." in name else "") if name else None
    return mixed.frozen(by_name[name], parent)


def _findings(entries: list[ModuleMode], root_flag: bool, by_name: dict[str, nn.Module]) -> list[Diagnostic]:
    findings: list[Diagnostic] = []
    for e in entries:
        if e.pinned is not None and e.pinned != e.training:
            findings.append(
                make("TE203", where=e.name, module=e.name or "<model>", type=e.type,
                     pinned="training" if e.pinned else "eval", actual="training" if e.training else "eval")
            )
        if e.kind == "unknown":
            findings.append(make("TE204", where=e.name, module=e.name or "<model>", type=e.type, reason=e.reason))
    # sensitive modules whose mode differs from the root's, unless explained (core.mixed)
    odd = [
        e.name for e in entries
        if e.sensitive and e.training != root_flag and e.pinned is None
        and not (root_flag and _frozen(by_name, e.name))
    ]
    flags = {e.name: e.training for e in entries}
    types = {e.name: e.type for e in entries}
    sensitive = [e.name for e in entries if e.sensitive]
    code = "TE202" if root_flag else "TE201"
    for anchor, group in mixed.top_groups(flags, odd, not root_flag, sensitive).items():
        suffix = f", {len(group)} mode-sensitive modules inside" if len(group) > 1 else ""
        findings.append(make(code, where=anchor, module=anchor, type=types[anchor] + suffix, modules=group))
    return findings
