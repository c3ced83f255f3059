"""Small reference models with mode-sensitive layers, for examples, tests, demo and benchmarks.

No weights are downloaded: every model is built from scratch.

>>> import torch, traineval.examples as ex
>>> ex.small_resnet()(torch.randn(2, 3, 32, 32)).shape
torch.Size([2, 10])
>>> ex.mlp()(torch.randn(2, 20)).shape
torch.Size([2, 10])
>>> ex.transformer_classifier()(torch.randint(0, 100, (2, 12))).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["BasicBlock", "SmallResNet", "TransformerClassifier", "mlp", "small_resnet", "transformer_classifier"]


class BasicBlock(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-style CNN with BatchNorm and a Dropout before the classifier."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = BasicBlock(width, width)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.layer3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def small_resnet(**kwargs: int | float) -> SmallResNet:
    """A small ResNet-style CNN (3×32×32 input, 10 classes) with 9 BatchNorm2d and a Dropout.

    >>> import traineval as te
    >>> len(te.mode_sensitive(small_resnet()))
    10
    """
    torch.manual_seed(0)
    return SmallResNet(**kwargs)  # type: ignore[arg-type]  # kwargs are checked by the constructor itself


def mlp(in_features: int = 20, hidden: int = 64, num_classes: int = 10, p: float = 0.5) -> nn.Sequential:
    """An MLP with BatchNorm1d and Dropout between its linear layers.

    >>> mlp(p=0.3)[3]
    Dropout(p=0.3, inplace=False)
    """
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(hidden, num_classes),
    )


class TransformerClassifier(nn.Module):
    """Embedding + ``nn.TransformerEncoder`` (dropout inside) + mean pooling + linear head."""

    def __init__(self, vocab: int = 100, d_model: int = 32, heads: int = 4, layers: int = 2,
                 num_classes: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


def transformer_classifier(**kwargs: int | float) -> TransformerClassifier:
    """A 2-layer Transformer encoder classifier over token ids (batch_first).

    >>> import torch
    >>> transformer_classifier(num_classes=3)(torch.randint(0, 100, (2, 7))).shape
    torch.Size([2, 3])
    """
    torch.manual_seed(0)
    return TransformerClassifier(**kwargs)  # type: ignore[arg-type]  # kwargs are checked by the constructor itself
