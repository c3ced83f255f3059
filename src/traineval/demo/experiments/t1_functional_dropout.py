"""T1 (beyond the article): ``F.dropout(x, 0.5)`` ignores ``model.eval()``; passing ``self.training`` fixes it."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te
from traineval.demo.experiments._context import Context
from traineval.demo.outcome import FAILS, HOLDS, Outcome


class _FunctionalDropoutNet(nn.Module):
    """The trap: ``F.dropout(x, 0.5)`` without ``training=self.training``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.5)  # noqa: TE002 - the trap T1 measures (and te.check must report)


class _FixedFunctionalDropoutNet(_FunctionalDropoutNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.5, self.training)


def measure(ctx: Context) -> Outcome:
    """Run the trap and its fix after ``model.eval()``; ask ``te.check`` about both.

    Args:
        ctx: reads ``ctx.seed`` only (the models are built here).

    Returns:
        *holds* when the trap keeps dropping after ``eval()`` and the fix is the identity; ``values``
        has what ``te.check`` reports on each.

    >>> from traineval.demo.experiments._context import untrained_context
    >>> c = measure(untrained_context())
    >>> c.verdict, "TE214" in c.values["te_check_codes_trap"]
    ('holds', True)
    """
    torch.manual_seed(ctx.seed + 29)
    bad, good = _FunctionalDropoutNet(), _FixedFunctionalDropoutNet()
    good.load_state_dict(bad.state_dict())
    bad.eval()
    good.eval()
    x = torch.randn(512, 16)
    with torch.no_grad():
        fc_out = bad.fc(x)
        b1, b2 = bad(x), bad(x)
        g1, g2 = good(x), good(x)
    live = fc_out != 0
    bad_rate = float(((b1 == 0) & live).sum() / live.sum())
    bad_differs = not torch.equal(b1, b2)
    good_identity = torch.equal(g1, fc_out) and torch.equal(g1, g2)
    ok = bad_differs and bad_rate > 0.4 and good_identity
    found_bad = te.check(bad, x[:8], gap_threshold=None, train_checks=False).codes()
    found_good = te.check(good, x[:8], gap_threshold=None, train_checks=False).codes()
    return Outcome(
        f"after model.eval(): F.dropout(x, 0.5) still zeroed {bad_rate:.1%} of the units and two calls differed "
        f"({'yes' if bad_differs else 'no'}); F.dropout(x, 0.5, self.training) was the identity "
        f"({'yes' if good_identity else 'NO'}); te.check reports {', '.join(found_bad) or 'nothing'} on the trap, "
        f"{', '.join(found_good) or 'nothing'} on the fix",
        HOLDS if ok else FAILS,
        {"eval_drop_rate": bad_rate, "calls_differ": bad_differs, "fixed_is_identity": good_identity,
         "te_check_codes_trap": found_bad, "te_check_codes_fixed": found_good},
    )
