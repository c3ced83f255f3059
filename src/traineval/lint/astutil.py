"""Small ``ast`` helpers shared by the visitor and the rules."""

from __future__ import annotations

import ast
import re

from traineval import ops

_FLAGLIKE = re.compile(r"^_*(is_|in_)?train(ing)?(_?mode|_?phase|_?flag)?$")
_CAP = re.compile(r"^_*[A-Z][A-Za-z0-9_]*$")

# torch.nn's batch-norm classes, from the one table of mode-sensitive ops
BN_CLASSES = frozenset(row.class_name for row in ops.MODULES if row.kind == "batchnorm" and not row.internal)
NOT_MODULES = {"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer", "ParameterList",
               "ParameterDict", "Module"}


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else ``None``."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def normalize(name: str) -> str:
    """Canonical spelling of torch names: ``torch.nn.modules.dropout.Dropout`` -> ``torch.nn.Dropout``."""
    if name.startswith("torch.nn.modules."):
        return "torch.nn." + name.rsplit(".", 1)[-1]
    if name.startswith("torch.nn.functional.") or name.startswith("torch.nn."):
        return name
    return name


def is_capword(name: str) -> bool:
    """``True`` for ``Net``, ``ResNet50``, ``_Block`` (class-like names)."""
    return bool(_CAP.match(name)) and not name.isupper()


def const_value(node: ast.AST | None) -> object:
    """The value of a literal (``True``, ``0.0``, ``-1``), else the sentinel ``NotImplemented``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        inner = const_value(node.operand)
        if inner is not NotImplemented and isinstance(inner, (int, float, bool)):
            return (not inner) if isinstance(node.op, ast.Not) else -inner
    return NotImplemented


def call_arg(call: ast.Call, index: int | None, name: str) -> ast.AST | None:
    """The argument bound to parameter ``name`` (keyword) or at position ``index``."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    if index is not None and index < len(call.args) and not any(
        isinstance(a, ast.Starred) for a in call.args[: index + 1]
    ):
        return call.args[index]
    return None


def has_star(call: ast.Call) -> bool:
    """Whether the call unpacks ``*args`` or ``**kwargs`` (arguments cannot be located)."""
    return any(isinstance(a, ast.Starred) for a in call.args) or any(kw.arg is None for kw in call.keywords)


def mentions_training(node: ast.AST) -> bool:
    """Whether an expression reads a ``.training`` flag or a variable named like one."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and (sub.attr == "training" or _FLAGLIKE.match(sub.attr)):
            return True
        if isinstance(sub, ast.Name) and ("training" in sub.id.lower() or sub.id.lower() in {"train", "is_train"}):
            return True
    return False


def names_in(node: ast.AST) -> set[str]:
    """Every bare name read in an expression."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def self_attrs(node: ast.AST) -> set[str]:
    """``x`` for every ``self.x`` read in an expression."""
    return {
        n.attr for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }
