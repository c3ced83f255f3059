import torch.nn as nn


class Bad(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def train(self, mode=True):  # TE012
        self.training = mode
        return self


class BadEval(nn.Module):
    def eval(self):  # TE012
        self.training = False
        return self


class Good(nn.Module):
    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.eval()
        return self


class GoodLoop(nn.Module):
    def train(self, mode=True):
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self


class GoodBase(nn.Module):
    def train(self, mode=True):
        nn.Module.train(self, mode)
        return self


class GoodEval(nn.Module):
    def eval(self):
        return self.train(False)


class Learner:
    def train(self, data, epochs):  # not a module: a training routine
        return data
