"""te.describe: the mode tree and mixed-mode findings."""

from __future__ import annotations

import json

import torch.nn as nn

import traineval as te
from traineval.examples import small_resnet, transformer_classifier


def codes(report):
    return [(d.code, d.where) for d in report.findings]


def test_clean_models_have_no_findings_in_either_mode():
    for model in (small_resnet(), transformer_classifier()):
        for mode in (True, False):
            report = te.describe(model.train(mode))
            assert report.findings == [] and report.ok


def test_every_module_listed_once_with_mode_kind_and_reason():
    model = small_resnet().eval()
    report = te.describe(model)
    assert [m.name for m in report.modules] == [n for n, _ in model.named_modules()]
    bn = next(m for m in report.modules if m.name == "layer1.bn1")
    assert bn.type == "BatchNorm2d" and bn.kind == "batchnorm" and not bn.training and "running" in bn.reason
    assert report.counts["by_kind"] == {"batchnorm": 9, "dropout": 1}


def test_dropout_left_training_in_eval_model_is_te201():
    model = small_resnet().eval()
    model.dropout.train()
    report = te.describe(model)
    assert codes(report) == [("TE201", "dropout")]
    assert not report.ok
    assert "dropout" in str(report) and "TRAIN" in str(report)


def test_whole_submodule_in_other_mode_reported_once_at_the_submodule():
    model = small_resnet().train()
    model.layer2.eval()  # e.g. a "frozen" part set by hand
    report = te.describe(model)
    assert codes(report) == [("TE202", "layer2")]
    assert report.findings[0].data["modules"] == ["layer2.bn1", "layer2.bn2", "layer2.shortcut.1"]


def test_partly_odd_submodule_reports_each_module():
    model = small_resnet().eval()
    model.layer2.train()
    model.layer2.bn2.eval()  # not all of layer2 differs
    # layer2 itself is not reported (bn2 is fine); its odd parts are, the shortcut as a whole
    assert codes(te.describe(model)) == [("TE201", "layer2.bn1"), ("TE201", "layer2.shortcut")]


def test_policies_explain_modes():
    model = small_resnet()
    te.freeze_batchnorm(model)
    model.train()
    report = te.describe(model)
    assert report.findings == []
    bn = next(m for m in report.modules if m.name == "stem.1")
    assert bn.policies == ("freeze_batchnorm",) and bn.pinned is False
    with te.mc_dropout(model):
        assert te.describe(model).findings == []


def test_flag_assigned_under_policy_is_te203():
    model = small_resnet()
    te.freeze_batchnorm(model)
    model.train()
    model.layer1.bn1.training = True
    assert ("TE203", "layer1.bn1") in codes(te.describe(model))


def test_unknown_custom_module_is_info_only():
    ns: dict = {"nn": nn}
    exec("class Dyn(nn.Module):\n    def forward(self, x):\n        return x\n", ns)
    report = te.describe(nn.Sequential(ns["Dyn"]()))
    assert codes(report) == [("TE204", "0")] and report.ok


def test_shared_module_listed_once_with_alias():
    shared = nn.Dropout(0.2)
    report = te.describe(nn.Sequential(shared, nn.Sequential(shared)))
    entry = next(m for m in report.modules if m.name == "0")
    assert entry.aliases == ("1.0",) and len(report.modules) == 3


def test_to_dict_is_json_ready_and_render_sensitive_only():
    model = small_resnet().eval()
    model.dropout.train()
    report = te.describe(model)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["mode"] == "eval" and data["findings"][0]["code"] == "TE201"
    assert data["counts"]["sensitive_training"] == 1
    short = report.render(sensitive_only=True)
    assert "conv1" not in short and "bn1" in short and short.count("\n") < str(report).count("\n")


def test_rich_rendering_when_installed():
    from rich.console import Console

    console = Console(record=True, width=120, color_system=None)
    console.print(te.describe(small_resnet()))
    text = console.export_text()
    assert "layer1" in text and "batchnorm" in text


def test_empty_model():
    report = te.describe(nn.Module())
    assert report.counts["modules"] == 1 and report.findings == [] and "1 module ·" in str(report)
