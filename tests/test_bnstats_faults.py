"""KeyboardInterrupt at every step of recalibrate_batchnorm (issue 14): during hook registration,
during the pass, during the undo itself, and a real SIGINT to a subprocess at random times.
Afterwards: no hook, no changed buffer, no changed RNG state, modes as before."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.nn as nn
from torch.nn.modules import module as module_mod

import traineval as te
import traineval.bnstats._stats as stats_mod


def model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.3), nn.ReLU(),
        nn.utils.spectral_norm(nn.Conv2d(4, 4, 1)), nn.BatchNorm2d(4),
    )


DATA = [torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]


def snapshot(m: nn.Module):
    return (
        {k: v.clone() for k, v in m.named_buffers()},
        [x.training for x in m.modules()],
        torch.get_rng_state(),
    )


def assert_untouched(m: nn.Module, before) -> None:
    bufs, modes, rng = before
    now = dict(m.named_buffers())
    assert bufs.keys() == now.keys()
    assert all(torch.equal(v, now[k]) for k, v in bufs.items())
    assert [x.training for x in m.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(not x._forward_pre_hooks and not x._forward_hooks for x in m.modules() if x is not m[4])
    assert len(m[4]._forward_pre_hooks) == 1                    # spectral norm's own hook only
    assert not module_mod._global_forward_pre_hooks and not module_mod._global_forward_hooks


def run_with_interrupt_at(monkeypatch, target, name, k, order, dropout):
    original = getattr(target, name)
    count = [0]

    def patched(*args, **kwargs):
        count[0] += 1
        if count[0] == k:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    m = model()
    before = snapshot(m)
    monkeypatch.setattr(target, name, patched)
    try:
        te.recalibrate_batchnorm(m, DATA, order=order, dropout=dropout, progress=False)
        hit = False
    except KeyboardInterrupt:
        hit = True
    monkeypatch.setattr(target, name, original)
    if hit:
        assert_untouched(m, before)
    return hit, count[0]


POINTS = [
    (nn.Module, "register_forward_pre_hook"),            # hook registration
    (nn.Module, "register_forward_hook"),
    (module_mod, "register_module_forward_pre_hook"),
    (stats_mod.Layer, "batch"),                           # inside the pass, per layer and batch
    (stats_mod.Layer, "add"),
    (nn.Module, "train"),                                 # set-up and the final mode restore
]


@pytest.mark.parametrize("order", ["single-pass", "layerwise"])
@pytest.mark.parametrize("dropout", ["on"])                # draws random numbers: the strict case
@pytest.mark.parametrize(("target", "name"), POINTS, ids=[n for _, n in POINTS])
def test_interrupt_at_every_call_leaves_nothing_behind(monkeypatch, target, name, order, dropout):
    hits = 0
    for k in range(1, 200):
        hit, calls = run_with_interrupt_at(monkeypatch, target, name, k, order, dropout)
        hits += hit
        if calls < k:                                      # past the last call: every point was tried
            break
    layerwise_only = name in ("register_forward_hook", "register_module_forward_pre_hook")  # analysis hooks
    assert hits >= 1 or (layerwise_only and order == "single-pass")


def test_second_interrupt_during_the_undo_is_absorbed(monkeypatch):
    """The first Ctrl-C arrives in the pass, the second in the middle of restoring a layer."""
    restore = stats_mod.Layer.restore
    calls = [0]

    def flaky(self):
        calls[0] += 1
        if calls[0] == 1:
            raise KeyboardInterrupt
        return restore(self)

    monkeypatch.setattr(stats_mod.Layer, "restore", flaky)
    m = model()
    before = snapshot(m)
    data = [*DATA[:2], "not a tensor"]                     # fails in the pass, after changes
    with pytest.raises(te.TraineValError):
        te.recalibrate_batchnorm(m, data, dropout="on", progress=False)
    assert calls[0] > 1
    assert_untouched(m, before)


SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.nn as nn, traineval as te
    from torch.nn.modules import module as module_mod
    torch.manual_seed(0)
    m = nn.Sequential(*[nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Dropout(0.2))
                        for _ in range(6)])
    data = [torch.randn(8, 8, 16, 16) for _ in range(4)]
    bufs = {k: v.clone() for k, v in m.named_buffers()}
    rng = torch.get_rng_state()
    print("ready", flush=True)
    outcome = "finished"
    try:
        while True:
            te.recalibrate_batchnorm(m, data, order=sys.argv[1], dropout="on", progress=False)
            bufs = {k: v.clone() for k, v in m.named_buffers()}
            rng = torch.get_rng_state()
    except KeyboardInterrupt:
        outcome = "interrupted"
    now = dict(m.named_buffers())
    same = all(torch.equal(v, now[k]) for k, v in bufs.items()) and torch.equal(torch.get_rng_state(), rng)
    hooks = sum(len(x._forward_pre_hooks) + len(x._forward_hooks) for x in m.modules())
    hooks += len(module_mod._global_forward_pre_hooks) + len(module_mod._global_forward_hooks)
    print(outcome, same, hooks, all(x.training for x in m.modules()), flush=True)
    """
)


@pytest.mark.parametrize("order", ["single-pass", "layerwise"])
def test_real_sigint_at_random_times(order):
    rng = random.Random(14)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, order], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert out.split() == ["interrupted", "True", "0", "True"], out
