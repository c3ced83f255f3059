"""The mode-relevant events of a file's functions, recorded as the walk meets them.

:class:`EventRecorder` adds to the rules' context (:mod:`traineval.lint.context`) what turns
calls and assignments into :class:`~traineval.lint.ir.Event` records for the flow rules:
mode changes (``eval()``, ``train(False)``), forwards, training steps, traces, freezing and
calls that the project index may resolve.
"""

from __future__ import annotations

import ast
import re

from traineval.lint import ir
from traineval.lint.astutil import call_arg, const_value, dotted, is_capword
from traineval.lint.context import FileContext
from traineval.lint.names import (
    ALIAS_METHODS,
    BUILTINS,
    FACTORIES,
    FORWARD_METHODS,
    MODULE_METHODS,
    NOT_MODELS,
    TRACERS,
    WRAPPERS,
)


def _mode_call(node: ast.Call) -> bool:
    """``m.train()``, ``m.train(False)``, ``m.train(mode=flag)`` — not ``trainer.train(dataset, epochs=3)``."""
    if len(node.args) > 1 or any(kw.arg != "mode" for kw in node.keywords):
        return False
    return not (node.args and node.keywords)



def _through_aliases(node: ast.AST) -> ast.AST:
    """The receiver of a chain of methods that return the module itself (``m.to(d).cuda()`` -> ``m``)."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ALIAS_METHODS:
        node = node.func.value
    return node


class EventRecorder(FileContext):
    """Turns calls and assignments into events on the current function."""

    def note_param_loop(self, node: ast.For | ast.AsyncFor) -> None:
        """Note loops over ``X.modules()`` and ``X.parameters()`` (for TE006 and freezing)."""
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

    def record_assign(self, target: ast.AST, value: ast.AST | None, node: ast.AST) -> None:
        """Record what an assignment binds: locals, freezing, and the ASSIGN event."""
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.record_assign(elt, None, node)
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

    def call_events(self, node: ast.Call) -> None:
        """The events of one call: mode changes, forwards, steps, traces, calls into the project."""
        func = node.func
        if isinstance(func, ast.Attribute):
            attr = func.attr
            recv = self.key(func.value)
            if recv is None and attr in {"eval", "train"}:
                recv = self.key(_through_aliases(func.value))  # `model.to(device).train()`
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
                if self.cur.node is not None and name not in BUILTINS and not is_capword(name):
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
