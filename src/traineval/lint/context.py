"""The rules' context object: what the walk knows at the node being checked.

:class:`FileContext` holds the state of one walk over a file (imports, the class and
function stack, ``no_grad`` depth, ``self.training`` gates) and the helpers every rule uses
(spans, source text, name resolution, receiver keys, reporting). The walk itself is
:class:`traineval.lint.visitor.FileVisitor`, a subclass; rules see only this class.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from traineval.lint import ir
from traineval.lint.astutil import call_arg, const_value, dotted, normalize
from traineval.lint.names import NO_GRAD
from traineval.lint.source import Source, char_col


@dataclass
class FuncCtx:
    """The function being walked."""

    ir: ir.FuncIR
    node: ast.AST | None
    params: set[str]
    locals: dict[str, list[ast.AST]] = field(default_factory=dict)
    is_method: bool = False
    module_class: bool = False  # a method (or a function nested in one) of an nn.Module-like class
    param_loops: dict[str, str] = field(default_factory=dict)  # loop var -> key of X in `for p in X.parameters()`
    nested: set[str] = field(default_factory=set)  # names of functions defined inside
    module_loops: set[str] = field(default_factory=set)  # loop vars over `X.modules()` (every submodule)


@dataclass
class ClassScan:
    """The nodes of one walk over a class, shared by the class-level rules."""

    calls: list[ast.Call] = field(default_factory=list)
    assigns: list[ast.Assign] = field(default_factory=list)
    self_attrs: set[str] = field(default_factory=set)


@dataclass
class ClassCtx:
    """The class being walked."""

    info: ir.ClassInfo
    node: ast.ClassDef


class FileContext:
    """The state of one walk over a parsed file and the helpers rules use on it."""

    def __init__(self, source: Source, module: str, package: str) -> None:
        self.src = source
        self.facts = ir.FileFacts(path=source.path, module=module)
        self.module = module
        self.package = package
        self.aliases: dict[str, str] = {}
        self.module_defs: set[str] = set()
        self.classes: list[ClassCtx] = []
        self.funcs: list[FuncCtx] = []
        self.nograd = 0
        self.gate = 0  # inside `if self.training:` or similar
        self.loop_id = 0
        self.local_classes: dict[str, ir.ClassInfo] = {}
        self.applied: set[str] = set()  # function names passed to `.apply(...)`
        self.assign_target: ast.AST | None = None

    # ------------------------------------------------------------------ locations, names
    def span(self, node: ast.AST) -> ir.Span:
        """The character-column span of a node."""
        line = getattr(node, "lineno", 1)
        end_line = getattr(node, "end_lineno", None) or line
        lines = self.src.lines
        col = getattr(node, "col_offset", 0)
        end_col = getattr(node, "end_col_offset", None) or col
        if 0 < line <= len(lines):
            col = char_col(lines[line - 1], col)
        if 0 < end_line <= len(lines):
            end_col = char_col(lines[end_line - 1], end_col)
        return ir.Span(line, col, end_line, end_col)

    def hit(self, code: str, node: ast.AST, edit: ir.Edit | None = None,
            needs: tuple[tuple[str, str], ...] = (), **values: Any) -> None:
        """Report a local finding."""
        self.facts.hits.append(ir.Hit(code, self.span(node), values, edit, needs))

    def text(self, node: ast.AST) -> str:
        """The source text of a node (one line shown for long ones)."""
        seg = self.src.segment(node)  # linear: ast.get_source_segment re-splits the file on each call
        if seg is None:
            return ast.unparse(node) if hasattr(ast, "unparse") else "?"
        seg = " ".join(seg.split())
        return seg if len(seg) <= 60 else seg[:57] + "..."

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name a callee or base refers to, through this file's imports."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if self.funcs and head in self.funcs[-1].locals and head not in self.aliases:
            return None  # a local variable, not an imported name
        if head in self.aliases:
            name = self.aliases[head] + ("." + rest if rest else "")
        elif head in self.module_defs:
            name = f"{self.module}.{name}"
        return normalize(name)

    def collect_imports(self, tree: ast.Module) -> None:
        """Record the module-level imports and definitions of the file."""
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self.add_import(stmt)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.module_defs.add(stmt.name)
                self.facts.defs[stmt.name] = f"{self.module}.{stmt.name}"

    def add_import(self, node: ast.Import | ast.ImportFrom) -> None:
        """Record the names one import statement binds."""
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    self.aliases[a.asname] = a.name
                else:
                    self.aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            return
        base = node.module or ""
        if node.level:
            parts = self.package.split(".") if self.package else []
            parts = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
            base = ".".join([*parts, base] if base else parts)
        for a in node.names:
            if a.name != "*":
                self.aliases[a.asname or a.name] = f"{base}.{a.name}" if base else a.name

    # ------------------------------------------------------------------ keys and events
    def key(self, node: ast.AST) -> str | None:
        """The receiver key of an expression (``model``, ``self.model``), or ``None``."""
        name = dotted(node)
        if name is None:
            return None
        head = name.split(".", 1)[0]
        if head in self.aliases or (head in self.module_defs and head not in self.cur.locals):
            return None
        return name

    @property
    def cur(self) -> FuncCtx:
        """The innermost function context (the module's top level at the outside)."""
        return self.funcs[-1]

    def event(self, kind: str, key: str | None, node: ast.AST, **kw: Any) -> None:
        """Append an event to the current function."""
        self.cur.ir.events.append(ir.Event(kind, key, self.span(node), nograd=self.nograd > 0, **kw))

    def evidence(self, key: str, method: str) -> None:
        """Remember that a module-only method was called on ``key``."""
        self.cur.ir.evidence.setdefault(key, set()).add(method)

    def is_no_grad(self, node: ast.AST) -> bool:
        """Whether a context manager or decorator turns gradients off (``torch.no_grad()``, ...)."""
        target = node.func if isinstance(node, ast.Call) else node
        ref = self.resolve(target) or ""
        if ref in NO_GRAD or ref.endswith(".no_grad") or ref.endswith(".inference_mode"):
            return True
        if isinstance(node, ast.Call) and ref in {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"}:
            return const_value(call_arg(node, 0, "mode")) is False
        return False
