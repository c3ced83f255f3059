import torch.nn as nn
import torch.nn.functional as F


class Homemade(nn.Module):
    def __init__(self):
        super().__init__()
        self.is_training = True
        self.fc = nn.Linear(4, 4)

    def set_mode(self, training):
        self.is_training = training

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5, training=self.is_training)  # TE013


class ModeString(nn.Module):
    def __init__(self, mode="train"):
        super().__init__()
        self.mode = mode
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        if self.mode == "train":  # TE013
            x = self.drop(x)
        return x


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.is_training = True

    def train(self, mode=True):
        super().train(mode)
        self.is_training = mode
        return self

    def forward(self, x):
        return F.dropout(x, 0.5, training=self.is_training)


class Property(nn.Module):
    @property
    def train_mode(self):
        return self.training

    def forward(self, x):
        if self.train_mode:
            x = F.dropout(x, 0.5)
        return x


class NotGating(nn.Module):
    def __init__(self):
        super().__init__()
        self.mode = "bilinear"

    def forward(self, x):
        if self.mode == "bilinear":
            x = F.dropout(x, 0.5, training=self.training)
        return x
