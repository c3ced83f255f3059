"""te.mc_dropout / te.predict_mc on third-party models (tiny transformers configs, no downloads),
checked against independent truth: the variance of N independent train-mode forwards with every
BatchNorm put in eval by hand (plain torch, no traineval), and bit-identical BatchNorm buffers."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn

import traineval as te

T = pytest.importorskip("transformers")
N = 120  # samples on each side; the mean variance then has a Monte-Carlo error of ~5-10%


def _ids(n: int = 3, length: int = 6, low: int = 3) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(low, 50, (n, length), generator=torch.Generator().manual_seed(1))}


def _pixels(size: int = 16) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))}


def bert() -> tuple[nn.Module, Any]:  # attention dropout only: lives in BertSelfAttention's SDPA call
    cfg = T.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.3)
    return T.BertModel(cfg), _ids()


def llama() -> tuple[nn.Module, Any]:
    cfg = T.LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=2, intermediate_size=16, attention_dropout=0.1)
    return T.LlamaModel(cfg), _ids()


def bart() -> tuple[nn.Module, Any]:
    cfg = T.BartConfig(vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                       decoder_ffn_dim=16, dropout=0.0, attention_dropout=0.2, activation_dropout=0.1,
                       encoder_layerdrop=0.0, decoder_layerdrop=0.0, max_position_embeddings=32)
    return T.BartModel(cfg), _ids()


def vit() -> tuple[nn.Module, Any]:
    cfg = T.ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=16, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.2)
    return T.ViTModel(cfg, add_pooling_layer=False), _pixels()


def swin() -> tuple[nn.Module, Any]:
    cfg = T.SwinConfig(image_size=16, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                       window_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.2,
                       drop_path_rate=0.0)
    return T.SwinModel(cfg), _pixels()


def wav2vec2() -> tuple[nn.Module, Any]:  # SpecAugment off: it is data augmentation, not dropout
    cfg = T.Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                           conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=4,
                           num_conv_pos_embedding_groups=2, hidden_dropout=0.0, attention_dropout=0.2,
                           activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
                           apply_spec_augment=False)
    return T.Wav2Vec2Model(cfg), {"input_values": torch.randn(2, 400, generator=torch.Generator().manual_seed(3))}


def detr() -> tuple[nn.Module, Any]:  # ResNet backbone from transformers (no timm), frozen BatchNorm
    backbone = T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1],
                              out_features=["stage4"])
    cfg = T.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
                       d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, num_queries=5,
                       dropout=0.0, attention_dropout=0.2, activation_dropout=0.0)
    cfg.backbone = None
    return T.DetrModel(cfg), {"pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))}


def encoder_layer() -> tuple[nn.Module, Any]:  # torch's own, with a BatchNorm head to keep frozen
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True)
            self.norm = nn.BatchNorm1d(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.layer(x).transpose(1, 2)).transpose(1, 2)

    net = Net()
    with torch.no_grad():  # non-trivial running statistics
        net.norm.running_mean.uniform_(-1, 1)
        net.norm.running_var.uniform_(0.5, 2)
    return net, (torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(5)),)


MODELS: dict[str, Callable[[], tuple[nn.Module, Any]]] = {
    "bert": bert, "llama": llama, "bart": bart, "vit": vit, "swin": swin,
    "wav2vec2": wav2vec2, "detr": detr, "encoder_layer": encoder_layer,
}
SLOW = {"detr", "swin", "wav2vec2"}


def _call(model: nn.Module, x: Any) -> torch.Tensor:
    out = model(**x) if isinstance(x, dict) else model(*x)
    return out if isinstance(out, torch.Tensor) else out[0]


def _independent_variance(model: nn.Module, x: Any, n: int) -> torch.Tensor:
    """N separate forwards in train mode, every BatchNorm in eval, by plain torch."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    with torch.no_grad():
        outs = torch.stack([_call(model, x) for _ in range(n)])
    return outs.var(0, correction=0)


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in MODELS]
)
def test_predict_mc_variance_matches_independent_train_forwards(name: str) -> None:
    torch.manual_seed(0)
    model, x = MODELS[name]()
    model.train()
    before = _buffers(model)
    modes = te.modes(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", te.TraineValWarning)  # something stochastic must remain
        got = te.predict_mc(model, x, samples=N, max_batch=N * 8)
    after = _buffers(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before), "predict_mc changed a buffer"
    assert te.modes(model) == modes
    truth = _independent_variance(model, x, N)
    assert float(truth.mean()) > 0, "the model must be stochastic in train mode"
    ratio = float(got.variance.mean() / truth.mean())
    print(f"{name}: ratio {ratio:.3f}")
    assert 0.7 < ratio < 1.4, f"{name}: predict_mc variance / independent variance = {ratio:.3f}"
    assert all(torch.equal(v, before[k]) for k, v in _buffers(model).items() if "running" in k)


def test_attention_dropout_is_the_only_live_change_on_bert() -> None:
    model, x = bert()
    with te.mc_dropout(model, example=x):
        live = {n for n, m in model.named_modules() if m.training}
    assert live and all(n.endswith("attention.self") or n.endswith("dropout") for n in live), live


def test_bert_without_example_warns_that_nothing_stochastic_remains() -> None:
    model, _ = bert()
    with pytest.warns(te.TraineValWarning, match="BertSelfAttention.*pass example="):
        te.mc_dropout(model).undo(restore_modes=True)
