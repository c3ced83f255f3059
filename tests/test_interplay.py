"""traineval's own probes are deliberate look-alikes of mode bugs: a running guard stays quiet."""

from __future__ import annotations

import torch

import traineval as te
from traineval.examples import small_resnet


def test_check_and_recalibration_under_an_active_guard_report_nothing():
    model = small_resnet()
    found = []
    with te.guard(model, on=found.append):
        te.check(model, torch.randn(6, 3, 32, 32), gap_threshold=None)
        te.recalibrate_batchnorm(model, [torch.randn(8, 3, 32, 32) for _ in range(2)], progress=False)
    assert found == []


def test_the_guard_still_reports_outside_those_calls():
    model = small_resnet()
    found = []
    with te.guard(model, on=found.append), torch.no_grad():
        model(torch.randn(4, 3, 32, 32))  # inference in training mode
    assert [d.code for d in found] == ["TE101"]
