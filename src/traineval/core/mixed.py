"""Mixed modes: when a module in the other mode is explained, and where to report it.

``te.describe`` (TE201/TE202) and ``te.guard`` (TE101/TE106) both look at modules whose
flag differs from what the model as a whole is doing. They share two rules, defined here
once so that the two never disagree:

* :func:`explained_eval` — a module in eval inside a training model is deliberate when a
  policy pins it there, or when it is a frozen part: its parameters (for a parameter-free
  module such as Dropout, its parent's) exist and none requires grad, as in a linear probe
  over a frozen backbone (``backbone.eval()`` + ``requires_grad_(False)``).
* :func:`top_groups` — findings are reported once per top-most ancestor in the same mode,
  so ``backbone.eval()`` gives one finding at ``backbone``, not one per BatchNorm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch.nn as nn


def frozen(module: nn.Module, parent: nn.Module | None) -> bool:
    """True when ``module``'s parameters — or, if it has none, ``parent``'s — exist and none
    requires grad.

    >>> import torch.nn as nn
    >>> head = nn.Linear(2, 2).requires_grad_(False)
    >>> frozen(head, None), frozen(nn.Dropout(), head), frozen(nn.Dropout(), None)
    (True, True, False)
    """
    params = list(module.parameters())
    if not params and parent is not None:
        params = list(parent.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def explained_eval(module: nn.Module, parent: nn.Module | None, pin: bool | None) -> bool:
    """True when ``module`` being in eval inside a training model is deliberate: a policy
    pins it (``pin is False``) or it is a frozen part (:func:`frozen`).

    >>> import torch.nn as nn
    >>> bn = nn.BatchNorm1d(2).requires_grad_(False)
    >>> explained_eval(bn, None, None), explained_eval(nn.BatchNorm1d(2), None, False)
    (True, True)
    """
    return pin is False or frozen(module, parent)


def top_groups(
    flags: Mapping[str, bool], members: Sequence[str], flag: bool, sensitive: Iterable[str]
) -> dict[str, list[str]]:
    """Group ``members`` (names of modules in mode ``flag``) at their top-most ancestor such
    that every module on the way is in mode ``flag`` and every ``sensitive`` module under it
    is a member.

    Args:
        flags: every module's ``training`` flag by name (the root is ``""``).
        members: the names to report, in the order to keep.
        flag: the mode the members are in.
        sensitive: the names of every mode-sensitive module (members included).

    Returns:
        ``{anchor name: [member names]}``, in the order of first appearance.

    >>> flags = {"": True, "a": False, "a.bn": False, "a.drop": False, "b": True}
    >>> top_groups(flags, ["a.bn", "a.drop"], False, ["a.bn", "a.drop"])
    {'a': ['a.bn', 'a.drop']}
    >>> top_groups(flags, ["a.bn"], False, ["a.bn", "a.drop"])   # a.drop is not reported
    {'a.bn': ['a.bn']}
    """
    member_set = set(members)
    blocked: set[str] = set()  # ancestors of a sensitive module that is not reported
    for name in sensitive:
        if name in member_set or not name:
            continue
        parts = name.split(".")
        blocked.update(".".join(parts[:i]) for i in range(len(parts)))
    groups: dict[str, list[str]] = {}
    for name in members:
        top = name
        while top:
            parent = top.rsplit(".", 1)[0] if "." in top else ""
            if flags.get(parent) is not flag or parent in blocked:
                break
            top = parent
        groups.setdefault(top, []).append(name)
    return groups
