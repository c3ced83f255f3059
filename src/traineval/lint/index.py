"""The project index: every function and class of the linted files, and who calls whom.

Built in the main process from the per-file facts. It resolves a call site to the
project function it calls (through imports, re-exports, ``self.method`` and ``super()``),
lists the callers of each function, and answers the one question the flow rules ask:
*in which mode is this receiver at this point?* — following parameters back to every
caller, in any file, a few levels deep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from traineval import ops
from traineval.lint import ir
from traineval.lint.names import FACTORIES

TRAIN_STATE, EVAL_STATE, UNKNOWN = "train", "eval", "unknown"
INSENSITIVE = "insensitive"  # a module whose output never depends on its mode (a loss, nn.Linear)
_CONTAINERS = {"torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict"}
_CNN_FACTORY = re.compile(r"resnet|resnext|densenet|vgg\d+_bn|mobilenet|efficientnet|regnet|inception|googlenet|"
                          r"shufflenet|mnasnet|wide_resnet|alexnet_bn|darknet|cspnet")
MAX_DEPTH = 6


def insensitive_ctor(ref: str) -> bool:
    """Whether a constructor builds a module whose mode never matters: a loss, or a ``torch.nn``
    class that the table of mode-sensitive ops (:mod:`traineval.ops`) does not list.

    >>> insensitive_ctor("torch.nn.CrossEntropyLoss"), insensitive_ctor("torch.nn.Dropout")
    (True, False)
    """
    if ref.rsplit(".", 1)[-1].endswith("Loss"):
        return True
    if ref.startswith("torch.nn.") and ref.count(".") == 2 and ref not in _CONTAINERS:
        return ops.module_op(ref) is None
    return False


@dataclass(frozen=True)
class Site:
    """A place in a file, for messages that name a caller."""

    path: str
    line: int


def related(a: str, b: str) -> bool:
    """Whether a mode change on one key reaches the other (same receiver, or a parent of it)."""
    return a == b or b.startswith(a + ".") or a.startswith(b + ".")


class ProjectIndex:
    """Functions, classes and call edges of the whole linted project."""

    def __init__(self, files: list[ir.FileFacts]) -> None:
        self.funcs: dict[str, ir.FuncIR] = {}
        self.path_of: dict[int, str] = {}
        self.classes: dict[str, ir.ClassInfo] = {}
        self.modules: dict[str, ir.FileFacts] = {}
        for facts in files:
            self.modules.setdefault(facts.module, facts)
            for c in facts.classes:
                self.classes.setdefault(c.qualname, c)
            for f in facts.funcs:
                self.funcs.setdefault(f.qualname, f)
                self.path_of[id(f)] = facts.path
        self.all_funcs = [f for facts in files for f in facts.funcs]
        self._module_of_cls: dict[str, bool] = {}
        self._framework: dict[str, bool] = {}
        self._resolved: dict[tuple[int, int], ir.FuncIR | None] = {}
        self.callers: dict[int, list[tuple[ir.FuncIR, int]]] = {}
        for f in self.all_funcs:
            if f.cls and self.is_framework(f.cls):
                f.framework = True
            for i, e in enumerate(f.events):
                if e.kind == ir.CALL:
                    callee = self.callee(f, i)
                    if callee is not None:
                        self.callers.setdefault(id(callee), []).append((f, i))
        self._state_memo: dict[tuple[int, str, int], tuple[str, Site | None]] = {}
        self._effect_memo: dict[tuple[int, str], str] = {}

    # ------------------------------------------------------------------ names
    def lookup(self, ref: str, depth: int = 0) -> str | None:
        """The qualname a dotted reference names in the project, following re-exports."""
        if ref in self.funcs or ref in self.classes:
            return ref
        if depth > 5:
            return None
        parts = ref.split(".")
        for i in range(len(parts) - 1, 0, -1):
            mod = ".".join(parts[:i])
            facts = self.modules.get(mod)
            if facts is None:
                continue
            name, rest = parts[i], parts[i + 1:]
            if name in facts.defs:
                return self.lookup(".".join([facts.defs[name], *rest]), depth + 1)
            if name in facts.imports:
                return self.lookup(".".join([facts.imports[name], *rest]), depth + 1)
            return None
        return None

    def method(self, cls: str, name: str, depth: int = 0) -> ir.FuncIR | None:
        """A method of a project class, searching its project bases (left to right)."""
        f = self.funcs.get(f"{cls}.{name}")
        if f is not None or depth > 6:
            return f
        info = self.classes.get(cls)
        for base in info.bases if info else ():
            q = self.lookup(base)
            if q and q in self.classes:
                found = self.method(q, name, depth + 1)
                if found:
                    return found
        return None

    def callee(self, f: ir.FuncIR, index: int) -> ir.FuncIR | None:
        """The project function that ``f.events[index]`` (a CALL) calls, if the project defines it."""
        memo_key = (id(f), index)
        if memo_key in self._resolved:
            return self._resolved[memo_key]
        ref = f.events[index].value
        out: ir.FuncIR | None = None
        if ref.startswith("self:") and f.cls:
            out = self.method(f.cls, ref[5:])
        elif ref.startswith("super:") and f.cls:
            info = self.classes.get(f.cls)
            for base in info.bases if info else ():
                q = self.lookup(base)
                if q and q in self.classes:
                    out = self.method(q, ref[6:])
                    if out:
                        break
        else:
            q = self.lookup(ref)
            if q in self.funcs:
                out = self.funcs[q]
        self._resolved[memo_key] = out
        return out

    def site(self, f: ir.FuncIR, span: ir.Span) -> Site:
        """Where ``span`` of function ``f`` is."""
        return Site(self.path_of.get(id(f), "?"), span.line)

    # ------------------------------------------------------------------ classes
    def is_module_class(self, ref: str, depth: int = 0) -> bool:
        """Whether a class reference names an nn.Module (a torch.nn class, or a project subclass)."""
        if ref.startswith("torch.nn.") or FACTORIES.match(ref):
            return True
        q = self.lookup(ref)
        if q is None or q not in self.classes or depth > 8:
            return False
        if q in self._module_of_cls:
            return self._module_of_cls[q]
        self._module_of_cls[q] = False
        info = self.classes[q]
        result = info.module_guess or any(self.is_module_class(b, depth + 1) for b in info.bases)
        self._module_of_cls[q] = result
        return result

    def is_framework(self, cls: str, depth: int = 0) -> bool:
        """Whether a class derives from a framework class that manages modes (Lightning, HF Trainer)."""
        if cls in self._framework:
            return self._framework[cls]
        info = self.classes.get(cls)
        self._framework[cls] = False
        result = info is not None and (info.framework or (depth < 8 and any(
            (q := self.lookup(b)) is not None and q in self.classes and self.is_framework(q, depth + 1)
            for b in info.bases)))
        self._framework[cls] = result
        return result

    def holds_bn(self, ref: str, attrs: list[str], depth: int = 0) -> bool | None:
        """Whether ``ref`` (a class or factory) followed by ``attrs`` (``backbone``, ...) builds a BatchNorm.

        ``None`` when the linter cannot see inside (a class from outside the project).
        """
        if depth > 8:
            return None
        if ref.startswith("torch.nn."):
            return False if attrs else "BatchNorm" in ref
        if ref.startswith(("torchvision.models.", "timm.")):
            return None if attrs else (True if _CNN_FACTORY.search(ref.lower()) else None)
        q = self.lookup(ref)
        info = self.classes.get(q or "")
        if info is None:
            return None
        if attrs:
            sub = info.attr_ctors.get(attrs[0])
            return self.holds_bn(sub, attrs[1:], depth + 1) if sub else None
        if info.holds_bn:
            return True
        verdicts = [self.holds_bn(c, [], depth + 1) for c in info.attr_ctors.values()]
        verdicts += [self.holds_bn(b, [], depth + 1) for b in info.bases if not b.startswith("torch.nn.")]
        if any(verdicts):
            return True
        return None if None in verdicts else False

    # ------------------------------------------------------------------ argument mapping
    def arg_map(self, call: ir.Event, callee: ir.FuncIR) -> dict[str, str]:
        """callee parameter -> caller key, for the arguments that are plain receivers."""
        out: dict[str, str] = {}
        params = list(callee.params)
        ref = str(call.value)
        if ref.startswith(("self:", "super:")) and params:
            out[params[0]] = "self"
            params = params[1:]
        for p, a in zip(params, call.args, strict=False):
            if a is not None:
                out[p] = a
        for name, a in call.kwargs:
            if a is not None and name in callee.params:
                out[name] = a
        if callee.cls is None:  # a plain function also sees the module globals the caller sees
            pass
        return out

    @staticmethod
    def to_callee(key: str, mapping: dict[str, str]) -> str | None:
        """The callee's name for a caller key, through the argument mapping."""
        for param, caller_key in mapping.items():
            if key == caller_key or key.startswith(caller_key + "."):
                return param + key[len(caller_key):]
        return None

    @staticmethod
    def to_caller(key: str, mapping: dict[str, str]) -> str | None:
        """The caller's name for a callee key (``model.encoder`` -> ``net.encoder``)."""
        root, dot, rest = key.partition(".")
        if root in mapping:
            return mapping[root] + dot + rest
        return None

    # ------------------------------------------------------------------ effects of a call
    def effect(self, f: ir.FuncIR, key: str, depth: int = 0) -> str:
        """The last mode change ``f`` makes on its receiver ``key``: eval, train, restore or ''."""
        memo = (id(f), key)
        if memo in self._effect_memo:
            return self._effect_memo[memo]
        self._effect_memo[memo] = ""
        result = ""
        for i, e in enumerate(f.events):
            if e.kind in (ir.EVAL, ir.TRAIN, ir.RESTORE) and e.key and related(e.key, key):
                if e.key == key or key.startswith(e.key + "."):
                    result = {ir.EVAL: EVAL_STATE, ir.TRAIN: TRAIN_STATE}.get(e.kind, "restore")
                else:
                    result = "restore"  # a part of it changed: not one mode any more
            elif e.kind == ir.ASSIGN and e.key and (e.key == key or key.startswith(e.key + ".")):
                result = "restore" if result else result  # rebound: later changes are not on ours
                break
            elif e.kind == ir.CALL and depth < MAX_DEPTH:
                callee = self.callee(f, i)
                if callee is None:
                    continue
                mapping = self.arg_map(e, callee)
                ck = self.to_callee(key, mapping)
                if ck is not None:
                    sub = self.effect(callee, ck, depth + 1)
                    if sub:
                        result = sub
        self._effect_memo[memo] = result
        return result

    def expand(self, f: ir.FuncIR, index: int, depth: int = 0, nograd: bool = False,
               stack: tuple[int, ...] = ()) -> list[tuple[str, str | None, bool]]:
        """The events of the function called at ``f.events[index]``, in the caller's names."""
        e = f.events[index]
        callee = self.callee(f, index)
        if callee is None or depth >= 4 or id(callee) in stack:
            return []
        mapping = self.arg_map(e, callee)
        out: list[tuple[str, str | None, bool]] = []
        for i, ce in enumerate(callee.events):
            ng = nograd or ce.nograd  # inside the callee (the call site's own no_grad is the caller's to add)
            if ce.kind == ir.STEP:
                out.append((ir.STEP, None, ng))
            elif ce.kind in (ir.EVAL, ir.TRAIN, ir.RESTORE, ir.FWD) and ce.key:
                k = self.to_caller(ce.key, mapping)
                if k is not None:
                    out.append((ce.kind, k, ng))
            elif ce.kind == ir.CALL:
                for kind, k, g in self.expand(callee, i, depth + 1, ng, (*stack, id(callee))):
                    if kind == ir.STEP:
                        out.append((kind, None, g))
                    elif k is not None:
                        kk = self.to_caller(k, mapping)
                        if kk is not None:
                            out.append((kind, kk, g))
        return out

    # ------------------------------------------------------------------ mode at a point
    def state(self, f: ir.FuncIR, key: str, index: int, depth: int = 0,
              module_evidence: set[str] | None = None) -> tuple[str, Site | None]:
        """The mode ``key`` is in just before ``f.events[index]``: (train|eval|unknown, caller site)."""
        memo = (id(f), key, index)
        if memo in self._state_memo:
            return self._state_memo[memo]
        self._state_memo[memo] = (UNKNOWN, None)
        result = self._state(f, key, index, depth)
        self._state_memo[memo] = result
        return result

    def _state(self, f: ir.FuncIR, key: str, index: int, depth: int) -> tuple[str, Site | None]:
        for i in range(index - 1, -1, -1):
            e = f.events[i]
            if e.kind in (ir.EVAL, ir.TRAIN, ir.RESTORE) and e.key and related(e.key, key):
                if e.kind == ir.EVAL:
                    return EVAL_STATE, None
                if e.kind == ir.TRAIN and (e.key == key or key.startswith(e.key + ".")):
                    return TRAIN_STATE, None
                return UNKNOWN, None
            if e.kind == ir.ASSIGN and e.key and (e.key == key or key.startswith(e.key + ".")):
                return self._origin(f, e, i, key, depth)
            if e.kind == ir.CALL and depth < MAX_DEPTH:
                callee = self.callee(f, i)
                if callee is None:
                    continue
                ck = self.to_callee(key, self.arg_map(e, callee))
                if ck is None and callee.cls is None and "." not in key and key not in f.params:
                    ck = key if f.qualname.rsplit(".", 1)[0] == callee.qualname.rsplit(".", 1)[0] else None
                if ck is None:
                    continue
                eff = self.effect(callee, ck, depth + 1)
                if eff == EVAL_STATE:
                    return EVAL_STATE, None
                if eff == TRAIN_STATE:
                    return TRAIN_STATE, None
                if eff:
                    return UNKNOWN, None
        return self._entry_state(f, key, depth)

    def _origin(self, f: ir.FuncIR, e: ir.Event, i: int, key: str, depth: int) -> tuple[str, Site | None]:
        origin = str(e.value)
        if origin == "eval":
            return EVAL_STATE, None
        if origin == "train":
            return TRAIN_STATE, None
        if origin.startswith("alias:"):
            other = origin[6:] + key[len(e.key or ""):]
            return self.state(f, other, i, depth + 1) if depth < MAX_DEPTH else (UNKNOWN, None)
        if origin.startswith("ctor:"):
            ref = origin[5:]
            if key == e.key and insensitive_ctor(ref):
                return INSENSITIVE, None
            if self.is_module_class(ref):
                return TRAIN_STATE, None
            q = self.lookup(ref)
            if q is None and ref.split(".")[0] not in {"torch", "numpy", "np"} and f.evidence.get(e.key or ""):
                return TRAIN_STATE, None  # an imported class used as a module (load_state_dict, parameters...)
        return UNKNOWN, None

    def _entry_state(self, f: ir.FuncIR, key: str, depth: int) -> tuple[str, Site | None]:
        root = key.split(".", 1)[0]
        if f.name == "<module>" or depth >= MAX_DEPTH or f.framework:
            return UNKNOWN, None
        is_param = root in f.params
        if not is_param and root == "self":
            return UNKNOWN, None
        found_eval = False
        for caller, ci in self.callers.get(id(f), []):
            call = caller.events[ci]
            if is_param:
                caller_key = self.to_caller(key, {k: v for k, v in self.arg_map(call, f).items()})
            else:
                caller_key = key if root not in caller.params else None  # a module global
            if caller_key is None:
                continue
            st, site = self.state(caller, caller_key, ci, depth + 1)
            if st == TRAIN_STATE:
                return TRAIN_STATE, site or self.site(caller, call.span)
            found_eval = found_eval or st == EVAL_STATE
        return (EVAL_STATE if found_eval else UNKNOWN), None
