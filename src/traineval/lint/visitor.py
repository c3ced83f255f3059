"""The per-file pass: one walk over a file's ``ast`` that runs the local rules and records,
for every function, the mode-relevant events the project-wide rules need.

Runs in worker processes; reads nothing but the file. The visitor keeps a context stack
(class, function, ``no_grad`` depth, ``self.training`` gates) and each ``visit_<Node>``
dispatches to the ``check_te0xx`` helpers registered in :mod:`traineval.lint.rules`.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field
from typing import Any

from traineval.lint import ir
from traineval.lint.astutil import BN_CLASSES, call_arg, const_value, dotted, is_capword, mentions_training, normalize
from traineval.lint.source import Source, char_col

NO_GRAD = {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
           "torch.autograd.grad_mode.inference_mode"}
TE_EVAL = {"traineval.evaluating", "traineval.inference", "traineval.mc_dropout", "traineval.core.modes.evaluating",
           "traineval.core.modes.inference"}
TE_TRAIN = {"traineval.training", "traineval.core.modes.training"}
TRACERS = {"torch.jit.trace", "torch.jit.trace_module", "torch.export.export", "torch.fx.symbolic_trace",
           "torch.onnx.export", "torch.onnx.dynamo_export"}
WRAPPERS = {"copy.deepcopy", "deepcopy", "torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DataParallel",
            "torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel",
            "DDP", "FSDP", "torch.distributed.fsdp.FullyShardedDataParallel", "torch.jit.script"}
ALIAS_METHODS = {"to", "cuda", "cpu", "half", "float", "double", "bfloat16", "requires_grad_", "share_memory",
                 "to_empty", "type"}
MODULE_METHODS = {"load_state_dict", "parameters", "named_parameters", "modules", "named_modules",
                  "children", "named_children", "requires_grad_", "buffers", "named_buffers",
                  "register_buffer", "register_forward_hook", "register_forward_pre_hook"}
NOT_MODELS = re.compile(r"(^|[._])(\w*trainer|engine|runner|learner|fitter|solver|agent|experiment|tuner|estimator|"
                        r"session|loop|callback|pipeline|pipe|job|env|environment|dataset|loader|tokenizer|scheduler|"
                        r"optimi[sz]er|opt|args|config|cfg)s?$", re.IGNORECASE)
FORWARD_METHODS = {"forward", "generate", "predict", "predict_proba"}
FACTORIES = re.compile(r"^(timm\.create_model|timm\.models\.\w+|torchvision\.models\.(?!detection|segmentation|"
                       r"video|optical_flow|quantization|get_weight|list_models|get_model_weights)\w+|"
                       r"torchvision\.models\.\w+\.\w+|torch\.hub\.load)$")
FRAMEWORK_BASES = re.compile(
    r"(^|\.)(LightningModule|LightningDataModule|Callback|Trainer|Seq2SeqTrainer|TrainerCallback|"
    r"Accelerator|LightningLite|Fabric)$"
)
MODULE_BASES = re.compile(r"(^|\.)(\w*Module|\w*Model|\w*Layer|\w*Block|\w*Net|\w*Network|\w*Encoder|\w*Decoder|"
                          r"\w*Attention|\w*Head|\w*Backbone|\w*Norm\w*|Sequential|ModuleList)$")
_BUILTINS = frozenset(dir(builtins))
_EVALISH = {"val", "valid", "validate", "validation", "eval", "evaluate", "evaluation", "evaluator", "predict",
            "prediction", "infer", "inference", "test"}
_MC = {"mc", "monte", "carlo", "mcd", "dropout", "uncertainty", "bayes", "bayesian", "sample", "sampling", "enable"}


def _mode_call(node: ast.Call) -> bool:
    """``m.train()``, ``m.train(False)``, ``m.train(mode=flag)`` — not ``trainer.train(dataset, epochs=3)``."""
    if len(node.args) > 1 or any(kw.arg != "mode" for kw in node.keywords):
        return False
    return not (node.args and node.keywords)


def _name_tokens(name: str) -> set[str]:
    return set(re.split(r"_+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()))


def is_evalish(name: str, filename: str = "") -> bool:
    """Whether a function is named like an evaluation routine (``validate``, ``run_eval``, ...)."""
    if name.startswith("test_") or (name.startswith("test") and filename.rsplit("/", 1)[-1].startswith("test")):
        return False  # pytest test functions are not evaluation routines
    return bool(_name_tokens(name) & _EVALISH)


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


class FileVisitor(ast.NodeVisitor):
    """Walks one parsed file; fills a :class:`~traineval.lint.ir.FileFacts`."""

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

    # ------------------------------------------------------------------ entry point
    def run(self) -> ir.FileFacts:
        """Walk the file and return its facts."""
        from traineval.lint.rules import prescan

        tree = self.src.tree
        assert tree is not None
        self._collect_imports(tree)
        prescan(self, tree)
        top = ir.FuncIR(qualname=f"{self.module}.<module>", name="<module>", params=(), cls=None,
                        span=ir.Span(1, 0, 1, 0))
        self.funcs.append(FuncCtx(ir=top, node=None, params=set()))
        self.facts.funcs.append(top)
        self._body(tree.body)
        self.facts.imports = dict(self.aliases)
        return self.facts

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

    def _collect_imports(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                self._import(stmt)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.module_defs.add(stmt.name)
                self.facts.defs[stmt.name] = f"{self.module}.{stmt.name}"

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
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

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self._import(node)

    visit_ImportFrom = visit_Import

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
        from traineval.lint.rules import check_class

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
            check_class(self, node, info, scan)
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
                        ref = self.resolve(sub.value.func)
                        if ref and (is_capword(ref.rsplit(".", 1)[-1]) or FACTORIES.match(ref)):
                            info.attr_ctors[t.attr] = ref
            elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                scan.self_attrs.add(sub.attr)
        return scan

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        from traineval.lint.rules import check_function

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
                        evalish=is_evalish(node.name, self.src.path), mc=bool(_name_tokens(node.name) & _MC))
        is_method = bool(cls) and bool(params) and params[0] == "self"
        ctx = FuncCtx(ir=fir, node=node, params=allp, is_method=is_method or parent.is_method,
                      module_class=(bool(cls) and cls.info.module_guess) or parent.module_class)
        self.facts.funcs.append(fir)
        decorated = any(self._is_no_grad(d) for d in node.decorator_list)
        saved = (self.nograd, self.gate)
        self.nograd, self.gate = (1 if decorated else 0), 0
        self.funcs.append(ctx)
        try:
            check_function(self, node)
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

    def _is_no_grad(self, node: ast.AST) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        ref = self.resolve(target) or ""
        if ref in NO_GRAD or ref.endswith(".no_grad") or ref.endswith(".inference_mode"):
            return True
        if isinstance(node, ast.Call) and ref in {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"}:
            return const_value(call_arg(node, 0, "mode")) is False
        return False

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        ng = 0
        after: list[tuple[str, str, ast.AST]] = []
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
            expr = item.context_expr
            if self._is_no_grad(expr):
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
        for kind, k, expr in after:
            self.event(kind, k, expr)

    visit_AsyncWith = visit_With

    def _loop(self, node: ast.For | ast.AsyncFor | ast.While) -> None:
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self.visit(node.iter)
            self._note_param_loop(node)
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

    def _note_param_loop(self, node: ast.For | ast.AsyncFor) -> None:
        it = node.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr in {
                "modules", "named_modules"}:
            target = node.target.elts[-1] if isinstance(node.target, ast.Tuple) and node.target.elts else node.target
            if isinstance(target, ast.Name):
                self.cur.module_loops.add(target.id)
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr in {
                "parameters", "named_parameters"}:
            k = self.key(it.func.value)
            target = node.target
            if isinstance(target, ast.Tuple) and target.elts:
                target = target.elts[-1]
            if k and isinstance(target, ast.Name):
                self.cur.param_loops[target.id] = k

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
        from traineval.lint.rules import check_expr

        check_expr(self, node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
        from traineval.lint.rules import check_assign

        check_assign(self, node)
        value = node.value
        if value is not None:
            self.visit(value)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            self.visit(t)
            self._record_assign(t, value, node)

    visit_AnnAssign = visit_AugAssign = visit_Assign

    def _record_assign(self, target: ast.AST, value: ast.AST | None, node: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._record_assign(elt, None, node)
            return
        if isinstance(target, ast.Name):
            self.cur.locals.setdefault(target.id, []).append(value if value is not None else target)
        # `p.requires_grad = False` over `model.parameters()` freezes `model`
        if (isinstance(target, ast.Attribute) and target.attr == "requires_grad"
                and isinstance(target.value, ast.Name) and const_value(value) is False):
            owner = self.cur.param_loops.get(target.value.id)
            if owner:
                self.event(ir.FREEZE, owner, node)
        k = self.key(target)
        if k is None or isinstance(node, ast.AugAssign):
            return
        self.event(ir.ASSIGN, k, node, value=self.origin(value))

    def origin(self, value: ast.AST | None) -> str:
        """Where an assigned value comes from, as the flow rules see it."""
        if value is None:
            return "unknown"
        k = self.key(value)
        if k is not None:
            return f"alias:{k}"
        if not isinstance(value, ast.Call):
            return "unknown"
        func = value.func
        if isinstance(func, ast.Attribute):
            if func.attr == "from_pretrained":
                return "eval"
            if func.attr == "eval" or (func.attr == "train" and const_value(call_arg(value, 0, "mode")) is False):
                return "eval"
            if func.attr == "train" and not value.args and not value.keywords:
                return "train"
            if func.attr in ALIAS_METHODS:
                return self.origin(func.value)
        ref = self.resolve(func) or ""
        if ref in WRAPPERS or ref.rsplit(".", 1)[-1] in {"DistributedDataParallel", "DataParallel",
                                                           "FullyShardedDataParallel", "deepcopy"}:
            return self.origin(value.args[0]) if value.args else "unknown"
        if FACTORIES.match(ref):
            return f"ctor:{ref}" if not ref.startswith("torch.hub") else "unknown"
        last = ref.rsplit(".", 1)[-1]
        if ref and is_capword(last):
            return f"ctor:{ref}"
        return "unknown"

    # ------------------------------------------------------------------ calls
    def visit_Call(self, node: ast.Call) -> None:
        from traineval.lint.rules import check_call

        check_call(self, node)
        self._call_events(node)
        self.generic_visit(node)

    def _call_events(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            attr = func.attr
            recv = self.key(func.value)
            if recv is not None:
                if attr in MODULE_METHODS:
                    self.evidence(recv, attr)
                if attr == "eval" and not node.args and not node.keywords and not NOT_MODELS.search(recv):
                    self.event(ir.EVAL, recv, node)
                    return
                if attr == "train" and _mode_call(node) and not NOT_MODELS.search(recv):
                    arg = call_arg(node, 0, "mode")
                    c = const_value(arg) if arg is not None else True
                    if c is False:
                        self.event(ir.EVAL, recv, node)
                    elif c is NotImplemented:
                        self.event(ir.RESTORE, recv, node)
                    else:
                        self.event(ir.TRAIN, recv, node, value=True)
                    return
                if attr == "load_state_dict":
                    self.event(ir.LOAD, recv, node)
                    return
                if attr == "requires_grad_":
                    arg = call_arg(node, 0, "requires_grad")
                    if const_value(arg) is False:
                        owner = self.cur.param_loops.get(recv, recv)
                        self.event(ir.FREEZE, owner, node)
                    return
                if attr in FORWARD_METHODS and recv.split(".")[0] != "super" and not NOT_MODELS.search(recv):
                    self.event(ir.FWD, recv, node)
                    return
            if attr == "backward" or attr == "manual_backward":
                self.event(ir.STEP, None, node)
                return
            if attr == "step" and recv is not None and re.search(r"optim|(^|[._])opt($|_)", recv.lower()):
                self.event(ir.STEP, None, node)
                return
        ref = self.resolve(func)
        if ref in {"torch.autograd.backward"}:
            self.event(ir.STEP, None, node)
            return
        if ref in TRACERS and node.args:
            k = self.key(node.args[0])
            if k and self._exports_in_train(ref, node):
                self.event(ir.TRACE, k, node, value=ref)
            return
        if isinstance(func, ast.Name):
            name = func.id
            if name in self.cur.locals or (name in self.cur.params and name not in self.cur.nested):
                if name in self.cur.params or not self._local_is_function(name):
                    self.event(ir.FWD, name, node)
                return
            if name not in self.module_defs and name not in self.aliases and name not in self.cur.nested:
                if self.cur.node is not None and name not in _BUILTINS and not is_capword(name):
                    self.event(ir.FWD, name, node)  # a global of the module (a script's `model`)
                return
            self._call_event(node, ref or name, name)
            return
        if isinstance(func, ast.Attribute):
            base = func.value
            if isinstance(base, ast.Name) and base.id == "self":
                if self.classes and func.attr in self.classes[-1].info.methods:
                    self._call_event(node, f"self:{func.attr}", f"self.{func.attr}")
                elif self.cur.is_method:
                    self.event(ir.FWD, f"self.{func.attr}", node)
                return
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                self._call_event(node, f"super:{func.attr}", f"super().{func.attr}")
                return
            if ref and ref.split(".")[0] in {v.split(".")[0] for v in self.aliases.values()} | {self.module}:
                self._call_event(node, ref, dotted(func) or ref)

    def _local_is_function(self, name: str) -> bool:
        values = self.cur.locals.get(name, [])
        return any(isinstance(v, ast.Lambda) or (isinstance(v, ast.Call) and (self.resolve(v.func) or "").endswith(
            "partial")) for v in values)

    def _exports_in_train(self, ref: str, node: ast.Call) -> bool:
        if ref != "torch.onnx.export":
            return True
        mode = call_arg(node, None, "training")
        return mode is not None and (dotted(mode) or "").rsplit(".", 1)[-1] in {"TRAINING", "PRESERVE"}

    def _call_event(self, node: ast.Call, ref: str, via: str) -> None:
        args = tuple(None if isinstance(a, ast.Starred) else self.key(a) for a in node.args)
        kwargs = tuple((kw.arg, self.key(kw.value)) for kw in node.keywords if kw.arg)
        self.event(ir.CALL, None, node, value=ref, args=args, kwargs=kwargs, via=via)
