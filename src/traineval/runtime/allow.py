"""Saying "this is intended": ``te.allow(code, ...)`` silences runtime findings in a block.

The runtime checks (``te.guard``, ``TE1xx``) consult :func:`is_allowed` before reporting.
Legitimate look-alikes of mode bugs — a teacher/EMA model run under ``no_grad`` in training
mode, traineval's own BatchNorm recalibration — are declared with this context manager
(also usable as a decorator). Allowances are per thread and nest.

>>> import traineval as te
>>> with te.allow("TE101"):
...     te.is_allowed("TE101"), te.is_allowed("TE102")
(True, False)
>>> te.is_allowed("TE101")
False
"""

from __future__ import annotations

import contextlib
import threading

_local = threading.local()
ALL = "*"


def _stack() -> list[frozenset[str]]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class allow(contextlib.ContextDecorator):
    """Allow the given codes (all runtime codes when none are given) inside the block.

    >>> import traineval as te
    >>> with te.allow():              # everything
    ...     te.is_allowed("TE105")
    True
    """

    def __init__(self, *codes: str) -> None:
        for code in codes:
            if not isinstance(code, str):
                raise TypeError(f"expected diagnostic codes such as 'TE101', got {type(code).__name__}")
        self.codes = frozenset(c.strip().upper() for c in codes) or frozenset({ALL})

    def __enter__(self) -> allow:
        _stack().append(self.codes)
        return self

    def __exit__(self, *exc: object) -> None:
        _stack().pop()


def is_allowed(code: str) -> bool:
    """True when ``code`` is allowed by an enclosing :class:`allow` block in this thread.

    >>> import traineval as te
    >>> with te.allow("TE101", "TE105"):
    ...     te.is_allowed("te105")          # codes are case-insensitive
    True
    """
    code = code.upper()
    return any(code in codes or ALL in codes for codes in _stack())
