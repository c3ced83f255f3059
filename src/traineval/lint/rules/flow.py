"""Rules that follow modes through functions and files (run on the project index).

* TE007 inference without eval — a forward under ``no_grad``/``inference_mode`` (or after
  ``load_state_dict``) of a model known to be in training mode, here or at some caller;
* TE008 training after evaluation — a training loop that puts the trained model in eval
  (directly or through helpers) and takes the next step without ``train()``;
* TE009 ``train()`` inside an evaluation routine, before a forward;
* TE010 ``torch.jit.trace`` / ``torch.export.export`` / ``fx.symbolic_trace`` of a
  training-mode model;
* TE011 / TE082 freezing with ``requires_grad=False`` alone while training goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from traineval.lint import ir
from traineval.lint.index import EVAL_STATE, INSENSITIVE, TRAIN_STATE, ProjectIndex, related

FlowHit = tuple[str, ir.Hit]  # (path, hit)


def run_flow_rules(index: ProjectIndex) -> Iterator[FlowHit]:
    """Every flow finding of the project, as ``(path, hit)``."""
    for f in index.all_funcs:
        if f.framework or not f.events:
            continue
        path = index.path_of[id(f)]
        seen: set[tuple[str, int, int]] = set()
        te009 = list(_te009(f))
        explained = {h.values["model"] for h in te009}  # TE007 on the same model would repeat TE009
        te007 = [h for h in _te007(index, f) if h.values["model"] not in explained] if not f.mc else []
        for hit in (*te007, *_te008(index, f), *te009, *_te010(index, f), *_te011(index, f)):
            k = (hit.code, hit.span.line, hit.span.col)
            if k not in seen:
                seen.add(k)
                yield path, hit


def _where(index: ProjectIndex, site: object) -> str:
    if site is None:
        return ""
    path = getattr(site, "path", "?")
    return f" (it is in training mode when called from {path}:{getattr(site, 'line', '?')})"


def _te007(index: ProjectIndex, f: ir.FuncIR) -> Iterator[ir.Hit]:
    trains = any(e.kind == ir.STEP for e in f.events)
    loaded: dict[str, int] = {}
    for i, e in enumerate(f.events):
        if e.kind == ir.LOAD and e.key:
            loaded[e.key] = i
        elif e.kind in (ir.EVAL, ir.TRAIN, ir.RESTORE) and e.key:
            for k in [k for k in loaded if related(k, e.key)]:
                del loaded[k]
        if e.kind == ir.FWD and e.key:
            after_load = next((k for k in loaded if related(k, e.key)), None)
            if not e.nograd and (after_load is None or trains):
                continue
            st, site = index.state(f, e.key, i)
            if st == TRAIN_STATE or (after_load is not None and st not in (EVAL_STATE, INSENSITIVE) and not trains
                                     and _is_module(index, f, e.key)):
                why = "under `torch.no_grad()`" if e.nograd else "after `load_state_dict()`"
                yield ir.Hit("TE007", e.span, {"model": e.key, "why": why, "caller": _where(index, site)})
            elif st not in (EVAL_STATE, INSENSITIVE) and e.nograd and _unverified_param(index, f, e.key):
                yield ir.Hit("TE081", e.span, {"model": e.key})
        elif e.kind == ir.CALL and e.nograd:
            for kind, inner, inner_ng in index.expand(f, i):
                if kind != ir.FWD or not inner or inner_ng:
                    continue  # a forward the callee itself runs under no_grad is checked in the callee
                st, site = index.state(f, inner, i)
                if st == TRAIN_STATE:
                    yield ir.Hit("TE007", e.span, {"model": inner, "why": f"under `torch.no_grad()` (via `{e.via}()`)",
                                                   "caller": _where(index, site)})
                    break


_MODELISH = re.compile(r"(model|net|network|encoder|decoder|backbone|generator|discriminator|teacher|student|"
                       r"classifier|ema|policy|critic|actor)s?\d*$", re.IGNORECASE)


def _unverified_param(index: ProjectIndex, f: ir.FuncIR, key: str) -> bool:
    """A model-like parameter of a function nobody in the project calls (TE081)."""
    root = key.split(".")[0]
    if root not in f.params or root == "self" or "." in key or index.callers.get(id(f)):
        return False
    return bool(_MODELISH.search(root)) or _is_module(index, f, key)


def _is_module(index: ProjectIndex, f: ir.FuncIR, key: str) -> bool:
    return bool(f.evidence.get(key) or f.evidence.get(key.split(".")[0]))


def _loop_bodies(f: ir.FuncIR) -> Iterator[tuple[int, int]]:
    starts: dict[object, int] = {}
    for i, e in enumerate(f.events):
        if e.kind == ir.LOOP_START:
            starts[e.value] = i
        elif e.kind == ir.LOOP_END and e.value in starts:
            yield starts.pop(e.value) + 1, i


def _te008(index: ProjectIndex, f: ir.FuncIR) -> Iterator[ir.Hit]:
    if not any(e.kind in (ir.STEP, ir.CALL) for e in f.events):
        return
    for start, end in _loop_bodies(f):
        # the loop body as (kind, key, nograd, where to report, via)
        seq: list[tuple[str, str | None, bool, ir.Span, str]] = []
        for i in range(start, end):
            e = f.events[i]
            if e.kind == ir.CALL:
                for kind, k, ng in index.expand(f, i):
                    seq.append((kind, k, ng or e.nograd, e.span, e.via))
            elif e.kind in (ir.STEP, ir.EVAL, ir.TRAIN, ir.RESTORE, ir.FWD):
                seq.append((e.kind, e.key, e.nograd, e.span, ""))
        if not any(s[0] == ir.STEP for s in seq):
            continue
        n = len(seq)
        for i, (kind, key, _, span, via) in enumerate(seq):
            if kind != ir.EVAL or key is None:
                continue
            forwarded = False
            for step in range(1, n + 1):
                k2, key2, ng2, _, _ = seq[(i + step) % n]
                if k2 in (ir.TRAIN, ir.RESTORE) and key2 and related(key2, key):
                    break
                if k2 == ir.FWD and key2 and related(key2, key) and not ng2:
                    forwarded = True
                elif k2 == ir.STEP and forwarded:
                    how = f" (via `{via}()`)" if via else ""
                    yield ir.Hit("TE008", span, {"model": key, "how": how})
                    break


def _te009(f: ir.FuncIR) -> Iterator[ir.Hit]:
    if f.mc:
        return
    for i, e in enumerate(f.events):
        if e.kind != ir.TRAIN or not e.key or not (f.evalish or e.nograd):
            continue
        for later in f.events[i + 1:]:
            if later.kind in (ir.EVAL, ir.RESTORE, ir.TRAIN) and later.key and related(later.key, e.key):
                break
            if later.kind == ir.FWD and later.key and related(later.key, e.key):
                where = "under `torch.no_grad()`" if e.nograd else f"in `{f.name}()`"
                yield ir.Hit("TE009", e.span, {"model": e.key, "context": where})
                break


def _te010(index: ProjectIndex, f: ir.FuncIR) -> Iterator[ir.Hit]:
    for i, e in enumerate(f.events):
        if e.kind == ir.TRACE and e.key:
            st, site = index.state(f, e.key, i)
            if st == TRAIN_STATE:
                yield ir.Hit("TE010", e.span, {"model": e.key, "tracer": str(e.value), "caller": _where(index, site)})


def _root_ctor(index: ProjectIndex, f: ir.FuncIR, key: str, upto: int) -> tuple[str | None, list[str]]:
    parts = key.split(".")
    for j in range(upto - 1, -1, -1):
        e = f.events[j]
        if e.kind == ir.ASSIGN and e.key and key.startswith(e.key) and str(e.value).startswith("ctor:"):
            return str(e.value)[5:], key[len(e.key):].strip(".").split(".") if key != e.key else []
    if parts[0] == "self" and f.cls:
        return f.cls, parts[1:]
    return None, parts


def _te011(index: ProjectIndex, f: ir.FuncIR) -> Iterator[ir.Hit]:
    for i, e in enumerate(f.events):
        if e.kind != ir.FREEZE or not e.key:
            continue
        trains_after = False
        policy = False  # te.freeze_batchnorm: survives model.train()
        fixed = False  # part.eval(): undone by a later model.train()
        for j in range(i + 1, len(f.events)):
            later = f.events[j]
            if later.kind == ir.STEP:
                trains_after = True
            elif later.kind == ir.CALL:
                ref = str(later.value)
                if "freeze_batchnorm" in ref or "freeze_bn" in ref.lower():
                    policy = True
                for kind, k, _ in index.expand(f, j):
                    if kind == ir.STEP:
                        trains_after = True
                    elif kind == ir.EVAL and k and related(k, e.key):
                        fixed = True
            elif later.kind == ir.EVAL and later.key and related(later.key, e.key):
                fixed = True
            elif later.kind == ir.TRAIN and later.key and (e.key.startswith(later.key + ".") or later.key == e.key):
                fixed = False  # model.train() after part.eval() undoes the freeze
        if policy or fixed or not trains_after:
            continue
        root, attrs = _root_ctor(index, f, e.key, i)
        bn = index.holds_bn(root, attrs) if root else None
        if bn is not False:
            yield ir.Hit("TE011" if bn else "TE082", e.span, {"part": e.key})
