"""The demo's two small models: a CNN classifier and a convolutional autoencoder, both with BatchNorm.

>>> import torch
>>> from traineval.demo.models import DemoCNN, ColourAutoencoder
>>> DemoCNN()(torch.rand(2, 3, 16, 16)).shape
torch.Size([2, 8])
>>> ColourAutoencoder()(torch.rand(2, 3, 16, 16)).shape
torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ColourAutoencoder", "DemoCNN"]


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class DemoCNN(nn.Module):
    """Four conv-BatchNorm-ReLU blocks, global average pooling, ``Dropout(p)`` and a linear classifier.

    >>> import traineval as te
    >>> [s.kind for s in te.mode_sensitive(DemoCNN())]
    ['batchnorm', 'batchnorm', 'batchnorm', 'batchnorm', 'dropout']
    """

    def __init__(self, num_classes: int = 8, width: int = 16, p: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, width),
            _conv_bn(width, 2 * width, stride=2),
            _conv_bn(2 * width, 2 * width),
            _conv_bn(2 * width, 4 * width, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class ColourAutoencoder(nn.Module):
    """A small convolutional autoencoder (16×16 → 4×4 → 16×16) with BatchNorm after every hidden conv.

    It stands for the article's image generator: the decoder's BatchNorm layers set the
    colour balance of what comes out.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.encoder = nn.Sequential(_conv_bn(3, width, stride=2), _conv_bn(width, 2 * width, stride=2))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 3, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
