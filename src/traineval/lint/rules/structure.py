"""Rules on the structure of a module class.

TE004 (mode-sensitive layer built inside ``forward``), TE005 (submodules in a plain
list/dict/tuple), TE012 (``train()`` override that skips children), TE013 (home-made
mode flag).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from traineval import ops
from traineval.lint.astutil import (
    NOT_MODULES,
    call_arg,
    const_value,
    dotted,
    is_capword,
    self_attrs,
)

if TYPE_CHECKING:
    from traineval.lint.context import ClassScan, FileContext


def _walk_no_defs(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` that does not enter nested functions, lambdas or classes."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        sub = stack.pop()
        yield sub
        if not isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(sub))


def sensitive_layer(v: FileContext, call: ast.Call) -> str | None:
    """The class name if ``call`` builds a torch layer whose behaviour depends on the mode.

    Read from the one table (:mod:`traineval.ops`): every gate of the class must hold for the
    arguments as written; an argument whose value is not a literal counts as holding.
    """
    row = ops.module_op(v.resolve(call.func) or "")
    if row is None or row.internal or row.follows is not None:
        return None
    for gate in row.gates:
        arg = call_arg(call, gate.arg.position, gate.arg.name)
        value = gate.arg.default if arg is None else const_value(arg)
        if value is not NotImplemented and not gate.holds(value):
            return None
    return row.class_name


def check_te004(v: FileContext, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """TE004: ``nn.Dropout(...)(x)`` / ``nn.BatchNorm2d(c)(x)`` built anew on every ``forward``."""
    if node.name != "forward" or not v.cur.module_class:
        return
    lazy: set[int] = set()
    for sub in _walk_no_defs(node):
        if isinstance(sub, ast.Assign) and isinstance(sub.value, ast.Call) and any(
            isinstance(t, (ast.Attribute, ast.Subscript)) for t in sub.targets
        ):
            lazy.add(id(sub.value))  # lazily registered as a submodule: `self.bn = nn.BatchNorm1d(c)`
    for sub in _walk_no_defs(node):
        if isinstance(sub, ast.Call) and id(sub) not in lazy:
            layer = sensitive_layer(v, sub)
            if layer:
                v.hit("TE004", sub, layer=layer, expr=v.text(sub))


def _module_expr(v: FileContext, node: ast.AST, local_values: dict[str, ast.AST]) -> tuple[bool, str | None]:
    """Whether ``node`` builds a module: (surely, or a project class to confirm later)."""
    if isinstance(node, ast.Name) and node.id in local_values:
        node = local_values[node.id]
    if isinstance(node, ast.Starred):
        return False, None
    if not isinstance(node, ast.Call):
        return False, None
    ref = v.resolve(node.func)
    if not ref:
        return False, None
    last = ref.rsplit(".", 1)[-1]
    if ref.startswith("torch.nn."):
        stateless = last.endswith("Loss") or last in STATELESS_LAYERS
        return (is_capword(last) and last not in NOT_MODULES and not stateless and ref.count(".") == 2), None
    if last in v.local_classes and ref == f"{v.module}.{last}":
        return v.local_classes[last].module_guess, None
    if is_capword(last) and "." in ref and not ref.startswith(("torch.", "builtins.", "collections.", "typing.")):
        return False, ref
    return False, None


def _container(node: ast.AST) -> tuple[str, list[ast.AST]] | None:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return type(node).__name__.lower(), list(node.elts)
    if isinstance(node, ast.Dict):
        return "dict", [v for v in node.values if v is not None]
    if isinstance(node, (ast.ListComp, ast.SetComp)):
        return "list", [node.elt]
    if isinstance(node, ast.DictComp):
        return "dict", [node.value]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"list", "tuple", "dict"}:
        if node.args and isinstance(node.args[0], ast.GeneratorExp):
            return node.func.id, [node.args[0].elt]
        if not node.args and not node.keywords:
            return node.func.id, []
    return None


# parameter-free layers whose behaviour never depends on the mode: harmless in a plain list
STATELESS_LAYERS = {"ReLU", "ReLU6", "GELU", "SiLU", "Mish", "ELU", "SELU", "CELU", "LeakyReLU", "Sigmoid",
                    "Tanh", "Softmax", "LogSoftmax", "Softplus", "Hardswish", "Hardsigmoid", "Hardtanh", "Identity",
                    "Flatten", "Unflatten", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d",
                    "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
                    "AdaptiveMaxPool2d", "Upsample", "PixelShuffle", "ZeroPad2d", "ConstantPad2d"}
_REGISTERERS = {"ModuleList", "ModuleDict", "Sequential", "add_module", "register_module", "ParameterList",
                "setattr", "extend_modules"}


def check_te005(v: FileContext, cls: ast.ClassDef, scan: ClassScan) -> None:
    """TE005: submodules kept in a plain list/dict/tuple attribute are invisible to ``eval()``."""
    registered: set[str] = set()
    for call in scan.calls:
        name = (dotted(call.func) or "").rsplit(".", 1)[-1]
        if name in _REGISTERERS:
            for arg in [*call.args, *(kw.value for kw in call.keywords)]:
                registered |= self_attrs(arg)
            if name in {"add_module", "register_module", "setattr"}:
                return  # elements registered one by one: cannot tell statically
    empty: dict[str, str] = {}
    reported: set[str] = set()
    local_values: dict[str, ast.AST] = {}
    ordered: list[ast.Assign | ast.Call] = sorted(
        [*scan.assigns, *scan.calls], key=lambda n: (n.lineno, n.col_offset)
    )
    for sub in ordered:
        if isinstance(sub, ast.Assign) and len(sub.targets) == 1:
            target = sub.targets[0]
            if isinstance(target, ast.Name):
                local_values[target.id] = sub.value
            if isinstance(target, ast.Subscript):
                attr = _self_attr(target.value)
                if attr and attr in empty and attr not in registered and attr not in reported:
                    _report(v, sub, attr, empty[attr], [_module_expr(v, sub.value, local_values)], reported)
                continue
            attr = _self_attr(target)
            if attr is None or attr in registered or attr in reported:
                continue
            found = _container(sub.value)
            if found is None:
                continue
            kind, elts = found
            if not elts:
                empty[attr] = kind
                continue
            _report(v, sub.value, attr, kind, [_module_expr(v, e, local_values) for e in elts], reported)
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
            attr = _self_attr(sub.func.value)
            if attr is None or attr not in empty or attr in registered or attr in reported:
                continue
            if sub.func.attr in {"append", "insert"} and sub.args:
                _report(v, sub, attr, empty[attr], [_module_expr(v, sub.args[-1], local_values)], reported)


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _report(v: FileContext, node: ast.AST, attr: str, kind: str, verdicts: list[tuple[bool, str | None]],
            reported: set[str]) -> None:
    container = "nn.ModuleDict" if kind == "dict" else "nn.ModuleList"
    if any(sure for sure, _ in verdicts):
        v.hit("TE005", node, attr=attr, kind=kind, container=container)
    else:
        refs = sorted({ref for _, ref in verdicts if ref})
        if not refs or (len(refs) != len(verdicts) and len(verdicts) > 1):
            return
        v.hit("TE005", node, needs=tuple(("module_class", r) for r in refs[:1]), attr=attr, kind=kind,
              container=container)
    reported.add(attr)


def _calls_super_mode(fn: ast.AST, name: str) -> bool:
    for sub in ast.walk(fn):
        if not isinstance(sub, ast.Call) or not isinstance(sub.func, ast.Attribute):
            continue
        f = sub.func
        if f.attr in {name, "train"} and isinstance(f.value, ast.Call) and dotted(f.value.func) == "super":
            return True
        if f.attr in {name, "train"} and sub.args and dotted(sub.args[0]) == "self" and dotted(f.value):
            return True  # nn.Module.train(self, mode) / Base.train(self, mode)
        if f.attr == "apply" and dotted(f.value) == "self":
            return True
        if f.attr == "train" and dotted(f.value) == "self" and name == "eval":
            return True  # eval() implemented as self.train(False)
        if f.attr in {"children", "modules", "named_children", "named_modules", "values"} and (
                dotted(f.value) or "").startswith("self"):
            return True  # a loop over the children
        if isinstance(f.value, ast.Name) and f.value.id == "self" and f.attr not in {"train", "eval"} and any(
                isinstance(a, ast.Name) and a.id == "mode" for a in sub.args):
            return True  # delegated to a helper that receives the mode
    return False


def check_te012(v: FileContext, cls: ast.ClassDef) -> None:
    """TE012: a ``train()``/``eval()`` override that neither calls ``super()`` nor reaches the children."""
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name not in {"train", "eval"}:
            continue
        params = [a.arg for a in fn.args.args]
        if not params or params[0] != "self" or len(params) > 2:
            continue
        if fn.name == "train" and len(params) == 2 and params[1] != "mode" and not (
            fn.args.defaults and isinstance(const_value(fn.args.defaults[-1]), bool)
        ):
            continue  # train(self, data): a training routine, not the mode switch
        if fn.name == "eval" and len(params) != 1:
            continue
        if any(isinstance(s, ast.Raise) for s in fn.body) or _calls_super_mode(fn, fn.name):
            continue
        v.hit("TE012", fn, cls=cls.name, method=fn.name)


FLAG = re.compile(r"^_*(is_|in_)?(train|training)(_?mode|_?phase|_?flag|_?stage)?$|^_*train_?mode$|"
                   r"^_*(is_|in_)?eval(_?mode|uating)?$|^_*inference(_?mode)?$|^_*(mode|phase|stage)$")
_MODE_WORDS = {"train", "training", "eval", "evaluation", "test", "val", "valid", "inference", "predict"}


def _gating_flag(test: ast.AST) -> set[str]:
    """Home-made flags read in a test: ``self.is_training``, ``self.mode == 'train'``."""
    found: set[str] = set()
    for attr in self_attrs(test):
        if attr == "training" or not FLAG.match(attr):
            continue
        if re.match(r"^_*(mode|phase|stage)$", attr):
            consts = {c.value.lower() for c in ast.walk(test) if isinstance(c, ast.Constant) and isinstance(
                c.value, str)}
            if not consts & _MODE_WORDS:
                continue
        found.add(attr)
    return found


def _uses_sensitive(v: FileContext, nodes: list[ast.AST]) -> bool:
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                name = (dotted(sub.func) or "").lower()
                if re.search(r"drop|(^|[._])bn\d*($|[._])|batch_?norm|norm\d*$", name):
                    return True
    return False


def _reads_training_attr(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "training" for n in ast.walk(node))


def check_te013(v: FileContext, cls: ast.ClassDef) -> None:
    """TE013: a home-made flag gates dropout/normalisation in ``forward`` but never follows ``self.training``."""
    uses: dict[str, ast.AST] = {}
    for fn in cls.body:
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or fn.name != "forward":
            continue
        for sub in _walk_no_defs(fn):
            if isinstance(sub, (ast.If, ast.IfExp)):
                body = sub.body if isinstance(sub.body, list) else [sub.body]
                orelse = sub.orelse if isinstance(sub.orelse, list) else [sub.orelse]
                if _uses_sensitive(v, [*body, *orelse]):
                    for flag in _gating_flag(sub.test):
                        uses.setdefault(flag, sub.test)
            elif isinstance(sub, ast.keyword) and sub.arg in {"training", "train"}:
                for flag in _gating_flag(sub.value):
                    uses.setdefault(flag, sub.value)
    if not uses:
        return
    assigned: dict[str, bool] = {}  # flag -> tied to self.training somewhere
    for fn in cls.body:
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        in_mode_switch = fn.name in {"train", "eval"}
        is_property = fn.name in uses and any(dotted(d) in {"property", "functools.cached_property"}
                                              for d in fn.decorator_list)
        if is_property:
            assigned[fn.name] = assigned.get(fn.name, False) or _reads_training_attr(fn)
        for sub in ast.walk(fn):
            targets: list[ast.AST] = []
            if isinstance(sub, ast.Assign):
                targets = list(sub.targets)
            elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
                targets = [sub.target]
            for t in targets:
                attr = _self_attr(t)
                if attr in uses:
                    value = getattr(sub, "value", None)
                    tied = in_mode_switch or (value is not None and _reads_training_attr(value))
                    assigned[attr] = assigned.get(attr, False) or tied
    for flag, node in uses.items():
        if flag in assigned and not assigned[flag]:
            v.hit("TE013", node, flag=f"self.{flag}", cls=cls.name)
