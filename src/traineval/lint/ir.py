"""The linter's intermediate records: what one file tells the project-wide pass.

The per-file pass (:mod:`traineval.lint.visitor`) runs in worker processes, so everything
here is a small picklable dataclass. Local rules report :class:`Hit` records directly; the
flow rules (TE007–TE011) need the whole project and work on :class:`FuncIR` event lists,
resolved by :mod:`traineval.lint.index`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Event kinds of a function's flattened event list (source order).
EVAL, TRAIN, RESTORE = "eval", "train", "restore"  # mode changes on a receiver
FWD = "fwd"  # a forward of a receiver (``m(x)``, ``m.forward``, ``m.generate``, ``m.predict``)
STEP = "step"  # a training step (``loss.backward()``, ``optimizer.step()``)
CALL = "call"  # a call to something the project may define
LOAD = "load"  # ``m.load_state_dict(...)``
TRACE = "trace"  # ``torch.jit.trace(m)``, ``torch.export.export(m)``, ...
ASSIGN = "assign"  # ``m = <origin>``
FREEZE = "freeze"  # ``m.requires_grad_(False)`` or ``p.requires_grad = False`` over ``m.parameters()``
LOOP_START, LOOP_END = "loop", "endloop"


@dataclass(frozen=True)
class Span:
    """A 1-based line, 0-based character column range in the linted text."""

    line: int
    col: int
    end_line: int
    end_col: int


@dataclass(frozen=True)
class Edit:
    """Replace ``span`` of the file's text with ``text`` (an autofix)."""

    span: Span
    text: str


@dataclass(frozen=True)
class Hit:
    """A rule's finding before formatting: code, where, the template values, an optional fix.

    ``needs`` lists conditions the project-wide pass must confirm, such as
    ``("module_class", "pkg.layers.Block")``.
    """

    code: str
    span: Span
    values: dict[str, Any] = field(default_factory=dict)
    edit: Edit | None = None
    needs: tuple[tuple[str, str], ...] = ()


@dataclass
class Event:
    """One mode-relevant thing a function does, in source order."""

    kind: str
    key: str | None
    span: Span
    nograd: bool = False  # lexically under no_grad / inference_mode (or a decorated function)
    value: Any = None  # ASSIGN: origin; CALL: callee ref; TRAIN: whether constant; LOOP: loop id
    args: tuple[str | None, ...] = ()  # CALL: positional argument keys
    kwargs: tuple[tuple[str, str | None], ...] = ()  # CALL: keyword argument keys
    via: str = ""  # CALL: how the callee is named in source


@dataclass
class FuncIR:
    """A function (or a module's top-level code, named ``<module>``) as events."""

    qualname: str
    name: str
    params: tuple[str, ...]
    cls: str | None
    span: Span
    events: list[Event] = field(default_factory=list)
    framework: bool = False  # a Lightning / Hugging Face hook: modes are managed for it
    evalish: bool = False  # named like an evaluation routine
    mc: bool = False  # named like Monte-Carlo dropout / uncertainty sampling
    evidence: dict[str, set[str]] = field(default_factory=dict)  # key -> module-only methods called on it


@dataclass
class ClassInfo:
    """What the project index needs to know about a class."""

    qualname: str
    bases: tuple[str, ...]
    module_guess: bool  # looks like an nn.Module from this file alone
    methods: tuple[str, ...]
    attr_ctors: dict[str, str] = field(default_factory=dict)  # self.attr = Ctor(...) -> dotted Ctor
    holds_bn: bool = False  # constructs a BatchNorm directly
    framework: bool = False


@dataclass
class FileFacts:
    """Everything the per-file pass found in one file."""

    path: str
    module: str
    hits: list[Hit] = field(default_factory=list)
    funcs: list[FuncIR] = field(default_factory=list)
    classes: list[ClassInfo] = field(default_factory=list)
    imports: dict[str, str] = field(default_factory=dict)  # module-level alias -> dotted name
    defs: dict[str, str] = field(default_factory=dict)  # module-level name -> qualname
