"""The per-file pass: one walk over a file's ``ast``.

The walk only walks: it keeps the context stack (class, function, ``no_grad`` depth,
``self.training`` gates) of :class:`~traineval.lint.context.FileContext`, records events
through :class:`~traineval.lint.events.EventRecorder`, and hands each node to the
``check_*`` dispatchers of :mod:`traineval.lint.rules`. Runs in worker processes and reads
nothing but the file.
"""

from __future__ import annotations

import ast

from traineval.lint import ir, rules
from traineval.lint.astutil import BN_CLASSES, dotted, is_capword, mentions_training
from traineval.lint.context import ClassCtx, ClassScan, FuncCtx
from traineval.lint.events import EventRecorder
from traineval.lint.names import (
    FACTORIES,
    FRAMEWORK_BASES,
    MC_WORDS,
    MODULE_BASES,
    TE_EVAL,
    TE_TRAIN,
    is_evalish,
    name_tokens,
)

__all__ = ["FileVisitor"]


class FileVisitor(EventRecorder, ast.NodeVisitor):
    """Walks one parsed file; fills a :class:`~traineval.lint.ir.FileFacts`."""

    # ------------------------------------------------------------------ entry point
    def run(self) -> ir.FileFacts:
        """Walk the file and return its facts."""
        tree = self.src.tree
        assert tree is not None
        self.collect_imports(tree)
        rules.prescan(self, tree)
        top = ir.FuncIR(qualname=f"{self.module}.<module>", name="<module>", params=(), cls=None,
                        span=ir.Span(1, 0, 1, 0))
        self.funcs.append(FuncCtx(ir=top, node=None, params=set()))
        self.facts.funcs.append(top)
        self._body(tree.body)
        self.facts.imports = dict(self.aliases)
        return self.facts

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.add_import(node)

    visit_ImportFrom = visit_Import

    # ------------------------------------------------------------------ statements
    def _body(self, stmts: list[ast.stmt]) -> None:
        gate_added = 0
        for stmt in stmts:
            self.visit(stmt)
            if (isinstance(stmt, ast.If) and mentions_training(stmt.test)
                    and (stmt.body and isinstance(stmt.body[-1], (ast.Return, ast.Raise, ast.Continue)))):
                self.gate += 1  # `if not self.training: return x` gates the rest of the block
                gate_added += 1
        self.gate -= gate_added

    def generic_visit(self, node: ast.AST) -> None:
        """Visit children; statement lists go through :meth:`_body` (for early-exit gates)."""
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    self._body(value)
                else:
                    for item in value:
                        if isinstance(item, ast.AST):
                            self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)
            del name

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        outer = self.classes[-1].info.qualname if self.classes else self.module
        bases = tuple(b for b in (self.resolve(x) or dotted(x) for x in node.bases) if b)
        methods = tuple(s.name for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)))
        guess = "forward" in methods or any(
            b.startswith("torch.nn.") or MODULE_BASES.search(b)
            or (b in self.local_classes and self.local_classes[b].module_guess)
            for b in bases
        )
        framework = any((FRAMEWORK_BASES.search(b) and not b.startswith("torch."))
                        or (b in self.local_classes and self.local_classes[b].framework) for b in bases)
        info = ir.ClassInfo(qualname=f"{outer}.{node.name}", bases=bases, module_guess=guess, methods=methods,
                            framework=framework)
        self.local_classes[node.name] = info
        scan = self._scan_class(node, info)
        self.facts.classes.append(info)
        self.classes.append(ClassCtx(info, node))
        try:
            rules.check_class(self, node, info, scan)
            self._body(node.body)
        finally:
            self.classes.pop()

    def _scan_class(self, node: ast.ClassDef, info: ir.ClassInfo) -> ClassScan:
        scan = ClassScan()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                scan.calls.append(sub)
                ref = self.resolve(sub.func) or ""
                if ref.startswith("torch.nn.") and ref.rsplit(".", 1)[-1] in BN_CLASSES:
                    info.holds_bn = True
            elif isinstance(sub, ast.Assign):
                scan.assigns.append(sub)
                if isinstance(sub.value, ast.Call) and len(sub.targets) == 1:
                    t = sub.targets[0]
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        ctor = self.resolve(sub.value.func)
                        if ctor and (is_capword(ctor.rsplit(".", 1)[-1]) or FACTORIES.match(ctor)):
                            info.attr_ctors[t.attr] = ctor
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                scan.self_attrs.add(sub.attr)
        return scan

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        cls = self.classes[-1] if self.classes and self._directly_in_class(node) else None
        parent = self.cur
        if cls:
            qual = f"{cls.info.qualname}.{node.name}"
        elif parent.node is not None:
            qual = f"{parent.ir.qualname}.{node.name}"
            parent.nested.add(node.name)
        else:
            qual = f"{self.module}.{node.name}"
        a = node.args
        params = tuple(p.arg for p in [*a.posonlyargs, *a.args])
        allp = {*params, *(p.arg for p in a.kwonlyargs)} | {p.arg for p in (a.vararg, a.kwarg) if p}
        fir = ir.FuncIR(qualname=qual, name=node.name, params=params, cls=cls.info.qualname if cls else None,
                        span=self.span(node), framework=bool(cls and cls.info.framework),
                        evalish=is_evalish(node.name, self.src.path), mc=bool(name_tokens(node.name) & MC_WORDS))
        is_method = bool(cls) and bool(params) and params[0] == "self"
        ctx = FuncCtx(ir=fir, node=node, params=allp, is_method=is_method or parent.is_method,
                      module_class=(cls is not None and cls.info.module_guess) or parent.module_class)
        self.facts.funcs.append(fir)
        decorated = any(self.is_no_grad(d) for d in node.decorator_list)
        saved = (self.nograd, self.gate)
        self.nograd, self.gate = (1 if decorated else 0), 0
        self.funcs.append(ctx)
        try:
            rules.check_function(self, node)
            self._body(node.body)
        finally:
            self.funcs.pop()
            self.nograd, self.gate = saved

    visit_AsyncFunctionDef = visit_FunctionDef

    def _directly_in_class(self, node: ast.AST) -> bool:
        return any(s is node for s in self.classes[-1].node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return  # lambdas carry no mode logic worth tracking

    def visit_Constant(self, node: ast.AST) -> None:
        return  # leaves: nothing below them (and NodeVisitor's own visit_Constant is slow)

    visit_Name = visit_JoinedStr = visit_Constant

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        ng = 0
        after: list[tuple[str, str, ast.AST]] = []
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
            expr = item.context_expr
            if self.is_no_grad(expr):
                ng += 1
            if isinstance(expr, ast.Call) and expr.args:
                ref = self.resolve(expr.func) or ""
                k = self.key(expr.args[0])
                if k and ref in TE_EVAL:
                    self.event(ir.EVAL, k, expr)
                    after.append((ir.RESTORE, k, expr))
                    if ref.endswith("inference"):
                        ng += 1
                elif k and ref in TE_TRAIN:
                    self.event(ir.TRAIN, k, expr, value=True)
                    after.append((ir.RESTORE, k, expr))
        self.nograd += ng
        try:
            self._body(node.body)
        finally:
            self.nograd -= ng
        for kind, k, node_ in after:
            self.event(kind, k, node_)

    visit_AsyncWith = visit_With

    def _loop(self, node: ast.For | ast.AsyncFor | ast.While) -> None:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self.visit(node.iter)
            self.note_param_loop(node)
            self.visit(node.target)
        else:
            self.visit(node.test)
        self.loop_id += 1
        lid = self.loop_id
        self.event(ir.LOOP_START, None, node, value=lid)
        self._body(node.body)
        self.event(ir.LOOP_END, None, node, value=lid)
        self._body(node.orelse)

    visit_For = visit_AsyncFor = visit_While = _loop

    def _gated_branches(self, node: ast.If | ast.IfExp) -> None:
        """``if``/``x if c else y``: both branches count as gated when the test reads a training flag."""
        self.visit(node.test)
        gated = mentions_training(node.test)
        self.gate += gated
        try:
            for branch in (node.body, node.orelse):
                if isinstance(branch, list):
                    self._body(branch)
                else:
                    self.visit(branch)
        finally:
            self.gate -= gated

    visit_If = visit_IfExp = _gated_branches

    def visit_Expr(self, node: ast.Expr) -> None:
        rules.check_expr(self, node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
        rules.check_assign(self, node)
        value = node.value
        if value is not None:
            self.visit(value)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            self.visit(t)
            self.record_assign(t, value, node)

    visit_AnnAssign = visit_AugAssign = visit_Assign

    # ------------------------------------------------------------------ calls
    def visit_Call(self, node: ast.Call) -> None:
        rules.check_call(self, node)
        self.call_events(node)
        self.generic_visit(node)
