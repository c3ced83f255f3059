"""TE001 (``model.eval`` referenced, not called) and TE006 (``.training`` assigned by hand)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from traineval.lint.astutil import const_value, dotted
from traineval.lint.ir import Edit, Span
from traineval.lint.names import NOT_MODELS

if TYPE_CHECKING:
    from traineval.lint.context import FileContext

_CONFIG_ROOTS = {"args", "opt", "opts", "config", "cfg", "conf", "hparams", "hp", "params", "settings", "state",
                 "flags", "options", "ctx", "context", "namespace", "ns", "kwargs", "self_args"}


def check_te001(v: FileContext, node: ast.Expr) -> None:
    """TE001: ``model.eval`` / ``model.train`` as a statement does nothing."""
    value = node.value
    if not (isinstance(value, ast.Attribute) and value.attr in {"eval", "train"}):
        return
    if dotted(value) is None and not isinstance(value.value, (ast.Call, ast.Subscript, ast.Attribute)):
        return
    span = v.span(value)
    edit = Edit(Span(span.end_line, span.end_col, span.end_line, span.end_col), "()")
    v.hit("TE001", value, edit=edit, expr=v.text(value), method=value.attr)


def check_te006(v: FileContext, node: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
    """TE006: ``x.training = ...`` changes one flag and no child."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for t in targets:
        if not (isinstance(t, ast.Attribute) and t.attr == "training"):
            continue
        recv = dotted(t.value)
        if recv is None:
            continue
        root = recv.split(".")[0]
        fn = v.cur
        if fn.ir.name in {"train", "eval", "__setstate__", "_apply", "apply"} and v.classes:
            continue  # a class's own train()/eval() override sets its flag by design
        if root in fn.module_loops or fn.ir.name in v.applied or root in _CONFIG_ROOTS:
            continue  # every submodule is visited, or a config object
        if root == "self" and not fn.module_class:
            continue  # a plain class's own attribute
        if fn.node is not None and _isinstance_guarded(fn.node, root):
            continue  # set on a leaf type (e.g. BatchNorm) picked by isinstance
        value = node.value
        c = const_value(value) if value is not None else NotImplemented
        if c is not True and c is not False:
            continue  # copying or restoring saved flags (`m.training = was_training`) is deliberate
        if NOT_MODELS.search(recv):
            continue  # `trainer.training = True`: not a module
        call = f"{recv}.train()" if c else f"{recv}.eval()"
        v.hit("TE006", t, target=v.text(t), call=call)


def _isinstance_guarded(fn: ast.AST, name: str) -> bool:
    for sub in ast.walk(fn):
        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "isinstance"
                and sub.args and dotted(sub.args[0]) == name):
            return True
    return False
