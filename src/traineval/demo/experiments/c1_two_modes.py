"""C1: ``train()``/``eval()`` flip one flag on every module; the mode-sensitive layers are what it is for."""

from __future__ import annotations

import copy

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.outcome import FAILS, HOLDS, Outcome


def measure(ctx: Context) -> Outcome:
    """Count the module flags ``train()`` sets and ``eval()`` clears, and the modules that read them.

    Args:
        ctx: reads ``ctx.cnn`` (a copy is switched back and forth).

    Returns:
        *holds* when ``train()`` set every flag, ``eval()`` cleared every one and some module reads
        them; ``values`` has the counts and the mode-sensitive modules.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, c.values["modules"], len(c.values["mode_sensitive"])
    ('holds', 21, 5)
    """
    model = copy.deepcopy(ctx.cnn)
    n_modules = len(te.modes(model))
    model.train()
    after_train = sum(te.modes(model).values())
    model.eval()
    after_eval = sum(te.modes(model).values())
    sensitive = te.mode_sensitive(model)
    kinds = sorted({s.kind for s in sensitive})
    ok = after_train == n_modules and after_eval == 0 and len(sensitive) > 0
    return Outcome(
        f"model.train() set {after_train}/{n_modules} module flags to True, model.eval() left {after_eval}/"
        f"{n_modules} True; {len(sensitive)} of {n_modules} modules read the flag ({', '.join(kinds)})",
        HOLDS if ok else FAILS,
        {
            "modules": n_modules,
            "training_after_train": after_train,
            "training_after_eval": after_eval,
            "mode_sensitive": [{"name": s.name, "kind": s.kind, "type": s.type_name} for s in sensitive],
        },
    )
