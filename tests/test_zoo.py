"""A zoo of third-party models built from tiny ``transformers`` configs (no downloads) and torch's
own sequence layers: ``describe``, ``mode_sensitive`` against an independent oracle (flip one
module's own flag, see whether the output or a buffer changes) and ``freeze_batchnorm``.
``mc_dropout``/``predict_mc`` against independent forwards live in test_zoo_mc.py. Columns owned
by others (check, guard, recalibrate_batchnorm) can be added as further tests over ``ZOO``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn

import traineval as te

T = pytest.importorskip("transformers")
from test_zoo_mc import MODELS as MC_MODELS  # noqa: E402


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ids() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(3, 50, (2, 5), generator=_g(1))}


def _img(size: int = 32) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(2, 3, size, size, generator=_g(2))}


def gpt2() -> tuple[nn.Module, Any]:
    return T.GPT2Model(T.GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=16)), _ids()


def t5() -> tuple[nn.Module, Any]:
    cfg = T.T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=16, num_layers=1, num_heads=2)
    x = _ids()
    return T.T5Model(cfg), {**x, "decoder_input_ids": x["input_ids"]}


def convnext() -> tuple[nn.Module, Any]:
    cfg = T.ConvNextConfig(hidden_sizes=[8, 8], depths=[1, 1], num_stages=2, drop_path_rate=0.1)
    return T.ConvNextModel(cfg), _img()


def resnet() -> tuple[nn.Module, Any]:
    return T.ResNetModel(T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1])), _img()


def mobilenetv2() -> tuple[nn.Module, Any]:
    cfg = T.MobileNetV2Config(depth_multiplier=0.25, image_size=32)
    return T.MobileNetV2Model(cfg), _img()


def efficientnet() -> tuple[nn.Module, Any]:
    cfg = T.EfficientNetConfig(image_size=32, width_coefficient=0.1, depth_coefficient=0.1,
                                 hidden_dim=128)  # = round_filters(1280): HF sizes the top BatchNorm by it
    return T.EfficientNetModel(cfg), _img(32)


def regnet() -> tuple[nn.Module, Any]:
    cfg = T.RegNetConfig(embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1], groups_width=8)
    return T.RegNetModel(cfg), _img()


def levit() -> tuple[nn.Module, Any]:
    cfg = T.LevitConfig(image_size=32, hidden_sizes=[16, 24, 32], num_attention_heads=[1, 1, 1], depths=[1, 1, 1],
                        key_dim=[8, 8, 8], mlp_ratio=[2, 2, 2], attention_ratio=[2, 2, 2])
    return T.LevitModel(cfg), _img()


def transformer() -> tuple[nn.Module, Any]:
    model = nn.Transformer(16, 2, 1, 1, 32, dropout=0.1)
    return model, (torch.randn(5, 2, 16, generator=_g(3)), torch.randn(4, 2, 16, generator=_g(4)))


def lstm() -> tuple[nn.Module, Any]:
    return nn.LSTM(4, 6, num_layers=2, dropout=0.2), (torch.randn(5, 2, 4, generator=_g(5)),)


def mha(batch_first: bool) -> Callable[[], tuple[nn.Module, Any]]:
    def build() -> tuple[nn.Module, Any]:
        q = torch.randn(3, 4, 8, generator=_g(6))
        return nn.MultiheadAttention(8, 2, dropout=0.2, batch_first=batch_first), (q, q, q)

    return build


ZOO: dict[str, Callable[[], tuple[nn.Module, Any]]] = {
    "bert": MC_MODELS["bert"], "gpt2": gpt2, "llama": MC_MODELS["llama"], "t5": t5, "bart": MC_MODELS["bart"],
    "vit": MC_MODELS["vit"], "swin": MC_MODELS["swin"], "convnext": convnext, "resnet": resnet,
    "mobilenetv2": mobilenetv2, "efficientnet": efficientnet, "regnet": regnet, "levit": levit,
    "wav2vec2": MC_MODELS["wav2vec2"], "detr": MC_MODELS["detr"], "nn.Transformer": transformer,
    "nn.LSTM": lstm, "nn.MHA(seq-first)": mha(False), "nn.MHA(batch-first)": mha(True),
}
SLOW = {"detr", "efficientnet", "mobilenetv2", "levit", "swin", "wav2vec2", "t5", "bart"}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ZOO]


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict) or hasattr(out, "values"):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _run(model: nn.Module, x: Any) -> list[torch.Tensor]:
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(**x) if isinstance(x, dict) else model(*x)
    return _tensors(out)


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _oracle(model: nn.Module, x: Any) -> set[str]:
    """Modules whose own flag (alone set to training) changes an output or a buffer."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    base = _run(model, x)
    found = set()
    for name, module in model.named_modules():
        if type(module) in _CONTAINERS:  # torch's containers never read their own flag
            continue
        module.training = True
        out = _run(model, x)
        module.training = False
        changed = len(out) != len(base) or any(
            a.shape != b.shape or not torch.equal(a, b) for a, b in zip(out, base, strict=False)
        )
        after = model.state_dict()
        if changed or any(not torch.equal(after[k], v) for k, v in state.items()):
            found.add(name)
        model.load_state_dict(state)
    return found


@pytest.mark.parametrize("name", PARAMS)
def test_zoo_describe_and_mode_sensitive_miss_nothing_the_oracle_sees(name: str) -> None:
    torch.manual_seed(0)
    model, x = ZOO[name]()
    report = te.describe(model)
    assert report is not None and str(report)
    listed = {s.name for s in te.mode_sensitive(model)}
    missed = _oracle(model, x) - listed
    assert not missed, f"{name}: mode_sensitive misses {sorted(missed)}"


@pytest.mark.parametrize("name", PARAMS)
def test_zoo_freeze_batchnorm_keeps_statistics_through_training_forwards(name: str) -> None:
    torch.manual_seed(0)
    model, x = ZOO[name]()
    norms = [m for m in model.modules() if te.classify(m) is not None and te.classify(m).kind == "batchnorm"]
    if not norms:
        pytest.skip(f"{name} has no BatchNorm")
    model.train()
    stats = {k: v.clone() for k, v in model.named_buffers()}
    with te.freeze_batchnorm(model):
        model.train()
        assert all(not m.training for m in norms)
        _run(model, x)
    assert all(torch.equal(v, stats[k]) for k, v in model.named_buffers())
    assert all(m.training for m in norms)  # restored on exit
