import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.functional import dropout


class Net(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = p
        self.mc = False
        self.fc = nn.Linear(4, 4)

    def forward(self, x, rate=0.1):
        x = F.dropout(self.fc(x), 0.5)  # TE002
        x = F.dropout(x, p=self.p)  # TE002
        x = F.dropout2d(x, self.p)  # TE002
        x = dropout(x, 0.2)  # TE002
        x = torch.nn.functional.dropout1d(x, 0.3, True)  # TE002
        x = torch.dropout(x, 0.5, True)  # TE002
        x = F.alpha_dropout(x, 0.5, training=True)  # TE002
        # look-alikes that follow the mode
        x = F.dropout(x, self.p, self.training)
        x = F.dropout(x, p=self.p, training=self.training)
        x = F.dropout(x, self.p, training=self.training and self.mc)
        x = F.dropout(x, p=self.p if self.training else 0.0)
        x = F.dropout(x, 0.0)
        x = F.dropout(x, rate)  # the caller decides the rate
        x = F.alpha_dropout(x, 0.5)  # alpha_dropout defaults to training=False
        x = torch.dropout(x, 0.5, self.training)
        if self.training:
            x = F.dropout(x, 0.5)
        return F.dropout(x, 0.1) if self.training else x

    def early_exit(self, x):
        if not self.training:
            return x
        return F.dropout(x, 0.5)


def plain_function(x, p, training=False):
    return F.dropout(x, p, training)  # a helper: its caller passes the flag


def always_on(x):
    return F.dropout(x, 0.5, training=True)  # TE002
