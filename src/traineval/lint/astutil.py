"""Small ``ast`` helpers shared by the visitor and the rules."""

from __future__ import annotations

import ast
import re

_FLAGLIKE = re.compile(r"^_*(is_|in_)?train(ing)?(_?mode|_?phase|_?flag)?$")
_CAP = re.compile(r"^_*[A-Z][A-Za-z0-9_]*$")

# torch.nn classes whose behaviour depends on the mode (see traineval.core.sensitivity for the live table)
DROPOUT_CLASSES = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}
BN_CLASSES = {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
    "SyncBatchNorm",
}
INSTANCE_NORM_CLASSES = {
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d",
}
DROPOUT_ARG_CLASSES = {  # sensitive only when built with dropout > 0 (None: default dropout of the class)
    "MultiheadAttention": 0.0, "RNN": 0.0, "LSTM": 0.0, "GRU": 0.0,
    "Transformer": 0.1, "TransformerEncoderLayer": 0.1, "TransformerDecoderLayer": 0.1,
}
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


def ends_with_exit(body: list[ast.stmt]) -> bool:
    """Whether a block always leaves the function (ends with ``return`` or ``raise``)."""
    return bool(body) and isinstance(body[-1], (ast.Return, ast.Raise))
