import copy

import torch.nn as nn


class Block(nn.Module):
    def forward(self, x):
        return x


class Net(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.layers = [nn.Linear(4, 4), nn.Dropout(0.1)]  # TE005
        self.blocks = [Block() for _ in range(n)]  # TE005
        self.heads = {"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)}  # TE005
        self.extra = []
        for _ in range(n):
            self.extra.append(nn.BatchNorm1d(4))  # TE005
        # look-alikes
        self.good = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])
        self.good_dict = nn.ModuleDict({"a": nn.Linear(4, 4)})
        self.sizes = [4, 8, 16]
        self.acts = [nn.ReLU(), nn.GELU()]  # parameter-free, mode-free
        self.losses = {"ce": nn.CrossEntropyLoss()}
        tmp = [nn.Linear(4, 4) for _ in range(n)]
        self.seq = nn.Sequential(*tmp)
        self.wrapped = [nn.Linear(4, 4)]
        self.wrapped = nn.ModuleList(self.wrapped)
        self.clones = [copy.deepcopy(self.good) for _ in range(2)]  # cannot tell what a copy is


class Trainer:
    def __init__(self, models):
        self.models = [nn.Linear(4, 4), nn.Linear(4, 4)]  # not a module: a plain holder
