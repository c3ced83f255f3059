"""A zoo of small models for the eval contract: clean ones, and buggy ones that each break one rule.

Every entry builds its model and example from fixed seeds. ``expect`` lists the ``(code,
module path)`` pairs ``te.check`` must report at error/warning level, and nothing else at those
levels (``info`` lists the info-level pairs expected). Clean models, several of them look-alikes
of a bug (a custom module that reads ``self.training`` correctly, ``F.dropout(...,
training=self.training)``, a per-sample centring), must give no error and no warning.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

import traineval as te
import traineval.examples as ex


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    example: Callable[[], Any]
    expect: set[tuple[str, str]] = field(default_factory=set)
    info: set[tuple[str, str]] = field(default_factory=set)
    kwargs: dict[str, Any] = field(default_factory=dict)


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 8, c: int = 3, size: int = 12, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=_gen()) + shift


def _warm(model: nn.Module, data: Callable[[], Any], steps: int = 6) -> nn.Module:
    """Give BatchNorm running statistics of the data distribution (as training would)."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            batch = data()
            model(*batch) if isinstance(batch, tuple) else model(batch)
    return model.eval()


def _fresh_images() -> torch.Tensor:
    return torch.randn(16, 3, 12, 12)


def _momentum_full(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: converges on the warm-up data
    return model


# ----------------------------------------------------------------------------- clean models
def cnn_bn_dropout() -> nn.Module:
    torch.manual_seed(0)
    model = _momentum_full(ex.SmallResNet(width=4))
    return _warm(model, _fresh_images)


def transformer_encoder() -> nn.Module:
    return ex.transformer_classifier()


class SeqLSTM(nn.Module):
    """Sequence-first 2-layer LSTM with dropout between layers; returns (logits, (h, c))."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 12, num_layers=2, dropout=0.3)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.lstm(x)
        return self.head(self.drop(out)), state


def lstm_seq_first() -> nn.Module:
    torch.manual_seed(0)
    return SeqLSTM()


def norm_zoo() -> nn.Module:
    """GroupNorm, InstanceNorm (both flavours) and LayerNorm: per-sample normalisation."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.InstanceNorm2d(8, track_running_stats=True, momentum=None), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(8), nn.Dropout(0.3), nn.Linear(8, 4),
    )
    return _warm(model, _fresh_images)


@dataclass
class ModelOutput(OrderedDict):
    """A Hugging Face-style output: an ordered dict and a dataclass at once."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden: tuple[torch.Tensor, ...] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                self[f.name] = value


class Tagger(nn.Module):
    """Keyword inputs, a batch-mean loss (no batch dimension) and nested hidden states."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.attn = nn.MultiheadAttention(16, 4, dropout=0.1, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(16, 5)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> ModelOutput:
        h = self.embed(input_ids)
        a, _ = self.attn(h, h, h, key_padding_mask=attention_mask == 0, need_weights=False)
        h2 = self.norm(h + self.drop(a))
        logits = self.head(h2)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return ModelOutput(loss=loss, logits=logits, hidden=(h, {"after_attention": h2}))


def tagger() -> nn.Module:
    torch.manual_seed(0)
    return Tagger()


def tagger_example() -> dict[str, torch.Tensor]:
    g = _gen(3)
    mask = torch.ones(6, 7, dtype=torch.long)
    mask[:, 5:] = torch.randint(0, 2, (6, 2), generator=g)
    return {"input_ids": torch.randint(0, 50, (6, 7), generator=g), "attention_mask": mask,
            "labels": torch.randint(0, 5, (6, 7), generator=g)}


class GuardedNoise(nn.Module):
    """Look-alike of TE210: noise only when training, functional dropout that follows the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        if self.training:
            x = x + 0.1 * torch.randn_like(x)
        return F.dropout(x, 0.3, training=self.training)


class PerSampleCenter(nn.Module):
    """Look-alike of TE211: a statistic over the features of each sample, not over the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)


class TrainOnlyCounter(nn.Module):
    """Look-alike of TE212: writes a buffer, but only in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen += x.shape[0]
        return x


def lookalikes() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(GuardedNoise(), PerSampleCenter(), TrainOnlyCounter(), nn.Linear(8, 3))


def _vectors() -> torch.Tensor:
    return torch.randn(8, 8, generator=_gen())


def frozen_bn() -> nn.Module:
    """BatchNorm frozen by a policy: stays in eval through model.train() — info, not a warning."""
    torch.manual_seed(0)
    model = _warm(_momentum_full(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))),
                  lambda: torch.randn(32, 8))
    te.freeze_batchnorm(model)
    return model


# ----------------------------------------------------------------------------- buggy models
class PlainListHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bns = [nn.BatchNorm1d(8)]  # plain list: model.eval() never reaches it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[0](self.fc(x))


def plain_list_bn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), PlainListHead(), nn.Linear(8, 2))


class DropoutInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.Dropout(0.5)(self.fc(x))  # a new module in training mode on every call


def dropout_built_in_forward() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), DropoutInForward(), nn.Linear(8, 2))


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.3)  # training=True by default


def functional_dropout() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), FunctionalDropout(), nn.Linear(8, 2))


class BatchCenter(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0)  # over the batch


def batch_center() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), BatchCenter(), nn.Linear(8, 2))


def bn_without_running_stats() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


class InputEMA(nn.Module):
    """Keeps a running mean of its inputs — in eval too."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("avg", torch.zeros(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.avg.mul_(0.9).add_(0.1 * x.detach().mean(0))
        return x


def writes_buffer_in_eval() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), InputEMA(), nn.Linear(8, 2))


class NoRecurseTrain(nn.Module):
    """A train() override that only sets its own flag: model.train() never reaches the children."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.4)
        self.out = nn.Linear(8, 2)

    def train(self, mode: bool = True) -> NoRecurseTrain:
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.relu(self.bn(self.fc(x)))))


def train_override() -> nn.Module:
    torch.manual_seed(0)
    model = _warm(NoRecurseTrain(), lambda: torch.randn(32, 8))
    for m in model.modules():
        m.training = False  # as if loaded in eval: the override keeps the children there
    return model


class SDPAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)  # no `if self.training`


def sdpa_dropout() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 16), SDPAttention(), nn.Linear(16, 2))


class MHAWrongLayout(nn.Module):
    """nn.MultiheadAttention with batch_first=False fed (batch, seq, embed): attends across the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 16)
        self.attn = nn.MultiheadAttention(16, 4)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        a, _ = self.attn(h, h, h)
        return self.head(a.mean(1))


def mha_batch_first_mismatch() -> nn.Module:
    torch.manual_seed(0)
    return MHAWrongLayout()


class LSTMWrongLayout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, num_layers=2, dropout=0.2)  # batch_first=False
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, seq, feat)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def lstm_batch_first_mismatch() -> nn.Module:
    torch.manual_seed(0)
    return LSTMWrongLayout()


def stale_bn() -> nn.Module:
    """Running statistics from data shifted by +3: eval normalises with the wrong mean."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6, momentum=None), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2))
    return _warm(model, lambda: _fresh_images() + 3.0)


class SwitchBack(nn.Module):
    """Calls .train() on a registered BatchNorm inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.bn.train()
        return self.bn(self.fc(x))


def switched_back_bn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(SwitchBack(), nn.Linear(8, 2))


def bn_momentum_zero() -> nn.Module:
    torch.manual_seed(0)
    model = _warm(_momentum_full(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))),
                  lambda: torch.randn(32, 8))
    model[1].momentum = 0.0
    return model


class NoisyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        return x + 0.1 * torch.randn_like(x)  # no `if self.training`


def noise_in_eval() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), NoisyBlock(), nn.Linear(8, 2))


class EncoderWithPlainListDropout(nn.Module):
    """A real nn.TransformerEncoder, followed by dropouts kept in a plain dict."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, 32, 0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.extra = {"pre_head": nn.Dropout(0.3)}
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.extra["pre_head"](self.encoder(x).mean(1)))


def transformer_plain_dict_dropout() -> nn.Module:
    torch.manual_seed(0)
    return EncoderWithPlainListDropout()


CLEAN: list[Case] = [
    Case("cnn_bn_dropout", cnn_bn_dropout, _images),
    Case("transformer_encoder", transformer_encoder, lambda: torch.randint(0, 100, (6, 12), generator=_gen())),
    Case("lstm_seq_first", lstm_seq_first, lambda: torch.randn(5, 6, 6, generator=_gen()), kwargs={"batch_dim": 1}),
    Case("norm_zoo", norm_zoo, _images),
    Case("tagger_model_output", tagger, tagger_example),
    Case("lookalikes", lookalikes, _vectors),
    Case("frozen_bn_policy", frozen_bn, _vectors, info={("TE217", "1")}),
]

BUGGY: list[Case] = [
    Case("plain_list_bn", plain_list_bn, _vectors,
         {("TE211", "2.bns[0]"), ("TE212", "2.bns[0]"), ("TE213", "2.bns[0]")}),
    Case("dropout_built_in_forward", dropout_built_in_forward, _vectors,
         {("TE210", "1.<Dropout>"), ("TE213", "1.<Dropout>")}),
    Case("functional_dropout", functional_dropout, _vectors, {("TE210", "1"), ("TE214", "1")}),
    Case("batch_center", batch_center, _vectors, {("TE211", "2")}),
    Case("bn_without_running_stats", bn_without_running_stats, _images, {("TE211", "1")}),
    Case("writes_buffer_in_eval", writes_buffer_in_eval, _vectors, {("TE212", "1")}),
    Case("train_override", train_override, _vectors, {("TE216", "bn"), ("TE216", "drop")}),
    Case("sdpa_dropout", sdpa_dropout, lambda: torch.randn(4, 5, 16, generator=_gen()),
         {("TE210", "1"), ("TE214", "1")}),
    Case("mha_batch_first_mismatch", mha_batch_first_mismatch, lambda: torch.randn(6, 5, 4, generator=_gen()),
         {("TE211", "attn")}),
    Case("lstm_batch_first_mismatch", lstm_batch_first_mismatch, lambda: torch.randn(6, 5, 4, generator=_gen()),
         {("TE211", "lstm")}),
    Case("stale_bn", stale_bn, _images, {("TE215", "1")}),
    Case("switched_back_bn", switched_back_bn, _vectors,
         {("TE211", "0.bn"), ("TE212", "0.bn"), ("TE213", "0.bn")}),
    Case("bn_momentum_zero", bn_momentum_zero, lambda: torch.randn(16, 8, generator=_gen()), {("TE216", "1")}),
    Case("noise_in_eval", noise_in_eval, _vectors, {("TE210", "1")}),
    Case("transformer_plain_dict_dropout", transformer_plain_dict_dropout,
         lambda: torch.randn(4, 6, 16, generator=_gen()),
         {("TE210", "extra['pre_head']"), ("TE213", "extra['pre_head']")}),
]

ALL: list[Case] = CLEAN + BUGGY
