"""TE002 (functional dropout not tied to the mode) and TE003 (attention dropout not gated)."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from traineval import ops
from traineval.lint.astutil import call_arg, const_value, has_star, mentions_training, names_in
from traineval.lint.ir import Edit, Span

if TYPE_CHECKING:
    from traineval.lint.context import FileContext

# dotted name -> (position of the training argument, its keyword, its default), from the one table
FUNCTIONAL_DROPOUT: dict[str, tuple[int, str, object]] = {
    op.name: (op.flag.position, op.flag.name, op.flag.default)
    for op in ops.FUNCTIONAL
    if op.kind in ("dropout", "activation") and op.flag is not None and op.flag.position is not None
}
SDPA = "torch.nn.functional.scaled_dot_product_attention"


def _gated(v: FileContext, expr: ast.AST, depth: int = 0) -> bool:
    """Whether a rate or flag is tied to the mode, or handed in by the caller (a parameter)."""
    if mentions_training(expr):
        return True
    names = names_in(expr)
    if names & (v.cur.params - {"self"}):
        return True
    if depth < 3:
        for name in names:
            for value in v.cur.locals.get(name, []):
                if value is not expr and _gated(v, value, depth + 1):
                    return True
    return False


def _has_self(v: FileContext) -> bool:
    return any("self" in f.params for f in v.funcs)


def check_te002(v: FileContext, node: ast.Call) -> None:
    """TE002: functional dropout whose ``training`` is missing (default True) or hard-coded True."""
    ref = v.resolve(node.func)
    spec = FUNCTIONAL_DROPOUT.get(ref or "")
    if spec is None or v.gate:
        return
    index, keyword, default = spec
    arg = call_arg(node, index, keyword)
    func = v.text(node.func)
    if arg is None:
        if has_star(node) or default is not True or not v.cur.module_class:
            return
        rate = call_arg(node, 1, "p")
        if rate is not None and (const_value(rate) == 0 or _gated(v, rate)):
            return
        edit = None
        args = [*node.args, *(kw.value for kw in node.keywords)]
        if _has_self(v) and args:  # `F.dropout()` (no input at all): report, offer no fix
            last = max(args, key=lambda n: (n.end_lineno or 0, n.end_col_offset or 0))
            end = v.span(last)
            edit = Edit(Span(end.end_line, end.end_col, end.end_line, end.end_col), f", {keyword}=self.training")
        v.hit("TE002", node, edit=edit, func=func, problem=f"has no `{keyword}=` argument (it defaults to True)",
              keyword=keyword)
        return
    c = const_value(arg)
    if c is True or (isinstance(c, (int, float)) and not isinstance(c, bool) and c != 0):
        edit = Edit(v.span(arg), "self.training") if v.cur.module_class and _has_self(v) else None
        v.hit("TE002", node, edit=edit, func=func, problem=f"is called with `{keyword}=True` hard-coded",
              keyword=keyword)


def check_te003(v: FileContext, node: ast.Call) -> None:
    """TE003: ``scaled_dot_product_attention(..., dropout_p=p)`` with ``p`` not gated on the mode."""
    if v.gate or v.resolve(node.func) != SDPA:
        return
    rate = call_arg(node, 4, "dropout_p")
    if rate is None:
        return
    c = const_value(rate)
    if c is not NotImplemented and not c:
        return
    if _gated(v, rate):
        return
    edit = None
    if v.cur.module_class and _has_self(v):
        exact = v.src.segment(rate)  # the exact text (never the shortened one), in parentheses
        if exact is not None:   # unless atomic, so that `a if c else b` keeps its meaning
            atomic = isinstance(rate, (ast.Name, ast.Attribute, ast.Constant, ast.Call, ast.Subscript))
            edit = Edit(v.span(rate), f"{exact if atomic else f'({exact})'} if self.training else 0.0")
    v.hit("TE003", node, edit=edit, func=v.text(node.func), rate=v.text(rate))
