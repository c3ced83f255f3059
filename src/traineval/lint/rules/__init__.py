"""The linter's rules, one file per family; the visitor calls the ``check_*`` dispatchers here.

* :mod:`.mode_calls` — TE001 (``model.eval`` not called), TE006 (``.training`` assigned);
* :mod:`.functional` — TE002 (functional dropout), TE003 (attention dropout);
* :mod:`.structure` — TE004 (layer built in ``forward``), TE005 (modules in a plain list),
  TE012 (``train()`` override), TE013 (home-made mode flag);
* :mod:`.flow` — TE007–TE011 and TE081/TE082, which follow modes through functions and files.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from traineval.lint.rules import functional, mode_calls, structure

if TYPE_CHECKING:
    from traineval.lint.context import ClassScan, FileContext
    from traineval.lint.ir import ClassInfo



def prescan(v: FileContext, tree: ast.Module) -> None:
    """Collect what rules need before the walk: functions passed to ``.apply(...)``."""
    if ".apply(" not in v.src.text:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "apply":
            for a in node.args:
                if isinstance(a, ast.Name):
                    v.applied.add(a.id)
                elif isinstance(a, ast.Attribute):
                    v.applied.add(a.attr)


def check_expr(v: FileContext, node: ast.Expr) -> None:
    """Rules on expression statements."""
    mode_calls.check_te001(v, node)


def check_assign(v: FileContext, node: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
    """Rules on assignments."""
    mode_calls.check_te006(v, node)


def check_call(v: FileContext, node: ast.Call) -> None:
    """Rules on calls."""
    functional.check_te002(v, node)
    functional.check_te003(v, node)


def check_function(v: FileContext, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """Rules on a whole function (called on entry)."""
    structure.check_te004(v, node)


def check_class(v: FileContext, node: ast.ClassDef, info: ClassInfo, scan: ClassScan) -> None:
    """Rules on a whole class (called on entry, with the nodes of one walk over it)."""
    if not info.module_guess:
        return
    structure.check_te005(v, node, scan)
    if "train" in info.methods or "eval" in info.methods:
        structure.check_te012(v, node)
    if "forward" in info.methods and any(structure.FLAG.match(a) for a in scan.self_attrs):
        structure.check_te013(v, node)
