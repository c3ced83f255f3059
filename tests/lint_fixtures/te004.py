import torch.nn as nn
from torch import nn as tnn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = None
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = nn.Dropout(0.5)(self.fc(x))  # TE004
        x = nn.BatchNorm1d(4)(x)  # TE004
        drop = tnn.Dropout2d(p=0.2)  # TE004
        x = drop(x)
        x = nn.Dropout(0.0)(x)  # p=0: no effect in either mode
        x = nn.InstanceNorm1d(4)(x)  # no running statistics: same in both modes
        x = nn.BatchNorm1d(4, track_running_stats=False)(x)  # batch statistics in both modes
        x = nn.LSTM(4, 4)(x)  # no dropout
        x = nn.ReLU()(x)
        if self.bn is None:
            self.bn = nn.BatchNorm1d(4)  # lazily registered submodule
        return self.drop(x)

    def helper(self):
        return nn.Dropout(0.5)  # not forward: a factory
